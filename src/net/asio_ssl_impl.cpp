// The one translation unit that compiles Boost.Asio's SSL implementation
// (BOOST_ASIO_SEPARATE_COMPILATION is defined for the whole project; src/net/asio_impl.cpp
// compiles the rest of Asio). Used by the Kubernetes API client (cluster/internode/k8s_lease.cpp)
// and the S3 client of the oss HLS store (proto/hls/s3_store.cpp).
#include <boost/asio/ssl/impl/src.hpp>
