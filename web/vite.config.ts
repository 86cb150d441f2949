import { defineConfig } from 'vitest/config';

// `npm run dev` proxies the API, the room WebSocket and the media URLs to a running castmesh
// (CASTMESH_URL, default http://127.0.0.1:8080). The SPA route /live stays with Vite; only
// /live/... (media) goes to the server.
const target = process.env.CASTMESH_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  server: {
    proxy: {
      '/api': { target, changeOrigin: true, ws: true },
      '^/live/.+': { target, changeOrigin: true },
      '/healthz': { target, changeOrigin: true },
    },
  },
  build: {
    outDir: 'dist',
    sourcemap: false,
    chunkSizeWarningLimit: 1200,
  },
  test: {
    environment: 'node',
    include: ['src/**/*.test.ts'],
  },
});
