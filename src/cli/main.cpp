// castmesh command line: `castmesh serve [-c FILE]`, `castmesh config check FILE`.

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "app/config.hpp"
#include "app/server.hpp"
#include "base/log.hpp"

int main(int argc, char** argv) {
  using namespace castmesh;
  CLI::App cli{"castmesh: live streaming (RTMP in; HLS, HTTP-FLV, RTMP out) and watch-together server"};
  cli.require_subcommand(1);
  cli.footer("Configuration keys (YAML `section: {key: value}`; each can be overridden by its\n"
             "environment variable):\n\n" + app::describe_keys());

  std::string config_path;
  auto* serve = cli.add_subcommand("serve", "Run the server");
  serve->add_option("-c,--config", config_path, "YAML configuration file")->check(CLI::ExistingFile);

  auto* config = cli.add_subcommand("config", "Configuration tools");
  config->require_subcommand(1);
  std::string check_path;
  auto* check = config->add_subcommand("check", "Validate a configuration file (and the environment)");
  check->add_option("file", check_path, "YAML configuration file")->required();
  auto* example = config->add_subcommand("example", "Print a configuration file with every key and its default");

  auto* version = cli.add_subcommand("version", "Print the version");

  CLI11_PARSE(cli, argc, argv);

  if (version->parsed()) {
    std::cout << "castmesh 0.1.0\n";
    return 0;
  }
  if (example->parsed()) {
    std::cout << app::render_example_yaml();
    return 0;
  }
  if (check->parsed()) {
    const std::string errors = app::check_config_file(check_path);
    if (errors.empty()) {
      std::cout << check_path << ": OK\n";
      return 0;
    }
    std::cerr << check_path << ": invalid configuration\n" << errors;
    if (!errors.empty() && errors.back() != '\n') std::cerr << '\n';
    return 2;
  }
  // serve
  auto cfg = app::load_config(config_path.empty() ? nullptr : &config_path);
  if (!cfg) {
    std::cerr << "castmesh: invalid configuration\n" << cfg.error().detail << '\n';
    return 2;
  }
  if (!log::configure(cfg->log_level)) {
    std::cerr << "castmesh: server.log_level: unknown level '" << cfg->log_level << "'\n";
    return 2;
  }
  return app::run_until_signal(std::move(cfg.value()));
}
