// castmesh command line: `castmesh serve [-c FILE]`, `castmesh config check FILE`,
// `castmesh admin create-user NAME [--role ROLE] [--password-file F] [-c FILE]`.

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "app/config.hpp"
#include "app/server.hpp"
#include "auth/accounts.hpp"
#include "base/log.hpp"
#include "store/store.hpp"

namespace {

// ---- admin subcommand -------------------------------------------------------------------------

/// Drops one trailing "\n" or "\r\n" (files and terminals end the line with it).
std::string chomp(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty() && s.back() == '\r') s.pop_back();
  return s;
}

/// The new user's password: the first line of `file`, else one line of stdin (typed without
/// echo when stdin is a terminal). False with a message on stderr when it cannot be read.
bool read_admin_password(const std::string& file, std::string& out) {
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      std::cerr << "castmesh admin: cannot read password file " << file << "\n";
      return false;
    }
    std::getline(in, out);
    out = chomp(out);
    return true;
  }
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  termios saved{};
  if (tty) {
    std::cerr << "Password: " << std::flush;
    if (::tcgetattr(STDIN_FILENO, &saved) == 0) {
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
  }
  const bool got = static_cast<bool>(std::getline(std::cin, out));
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cerr << "\n";
  }
  if (!got) {
    std::cerr << "castmesh admin: no password given on stdin (or use --password-file)\n";
    return false;
  }
  out = chomp(out);
  return true;
}

/// `castmesh admin create-user`: exit 0 when the user was created, 1 otherwise.
int admin_create_user(const std::string& config_path, const std::string& name, const std::string& role,
                      const std::string& password_file) {
  using namespace castmesh;
  auto cfg = app::load_config(config_path.empty() ? nullptr : &config_path);
  if (!cfg) {
    std::cerr << "castmesh admin: invalid configuration\n" << cfg.error().detail << '\n';
    return 1;
  }
  if (auto st = auth::validate_username(name); !st) {
    std::cerr << "castmesh admin: " << st.error().detail << '\n';
    return 1;
  }
  if (role != store::kRoleAdmin && role != store::kRoleRoot && role != store::kRoleUser) {
    std::cerr << "castmesh admin: --role must be admin, root or user (got '" << role << "')\n";
    return 1;
  }
  std::string password;
  if (!read_admin_password(password_file, password)) return 1;
  if (auto st = auth::validate_password(password); !st) {
    std::cerr << "castmesh admin: " << st.error().detail << '\n';
    return 1;
  }
  auto store = store::open_store(cfg->database.url);
  if (!store) {
    std::cerr << "castmesh admin: cannot open the database: " << store.error().message() << '\n';
    return 1;
  }
  auth::Accounts accounts(**store, cfg->auth);
  auto user = accounts.create_user(name, password, role);
  if (!user) {
    std::cerr << "castmesh admin: cannot create user '" << name << "': " << user.error().detail << '\n';
    return 1;
  }
  std::cout << "created user '" << user->username << "' (id " << user->id << ", role " << user->role << ")\n";
  return 0;
}

}  // namespace

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

  auto* admin = cli.add_subcommand("admin", "Administration tools (use the database of the configuration)");
  admin->require_subcommand(1);
  std::string admin_config_path, admin_name, admin_role = "user", admin_password_file;
  auto* create_user = admin->add_subcommand(
      "create-user", "Create a user; the password is read from --password-file, else from stdin");
  create_user->add_option("name", admin_name, "Username (3..32 characters of A-Z a-z 0-9 _ . -)")->required();
  // Checked by Accounts::create_user (exit 1 with a message) rather than by CLI11.
  create_user->add_option("--role", admin_role, "Global role: admin, root or user (default user)");
  create_user->add_option("--password-file", admin_password_file, "File whose first line is the password");
  create_user->add_option("-c,--config", admin_config_path, "YAML configuration file (database.url)")
      ->check(CLI::ExistingFile);

  CLI11_PARSE(cli, argc, argv);

  if (version->parsed()) {
    std::cout << "castmesh " << castmesh::app::version() << "\n";
    return 0;
  }
  if (create_user->parsed()) {
    return admin_create_user(admin_config_path, admin_name, admin_role, admin_password_file);
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
