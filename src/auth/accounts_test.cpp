#include "auth/accounts.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>

#include "auth/crypto.hpp"

namespace castmesh::auth {
namespace {

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::open_store(":memory:");
    ASSERT_TRUE(s.ok()) << s.error().message();
    store_ = std::move(*s);
    make_accounts(AuthConfig{});
  }

  void make_accounts(const AuthConfig& cfg) {
    accounts_ = std::make_unique<Accounts>(*store_, cfg, [this] { return wall_; }, [this] { return mono_; });
  }

  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Accounts> accounts_;
  int64_t wall_ = 1'700'000'000'000;
  int64_t mono_ = 5'000;
};

TEST(AccountRules, Usernames) {
  EXPECT_TRUE(validate_username("bob").ok());
  EXPECT_TRUE(validate_username("A.b-c_9").ok());
  EXPECT_TRUE(validate_username(std::string(32, 'x')).ok());
  EXPECT_EQ(validate_username("ab").code(), Errc::malformed);
  EXPECT_EQ(validate_username(std::string(33, 'x')).code(), Errc::malformed);
  EXPECT_EQ(validate_username("bob smith").code(), Errc::malformed);
  EXPECT_EQ(validate_username("bob#1").code(), Errc::malformed);
  EXPECT_EQ(validate_username("b\xc3\xa9" "b").code(), Errc::malformed);
}

TEST(AccountRules, PasswordsCountCharactersNotBytes) {
  EXPECT_TRUE(validate_password("12345678").ok());
  EXPECT_EQ(validate_password("1234567").code(), Errc::malformed);
  EXPECT_TRUE(validate_password(std::string(256, 'p')).ok());
  EXPECT_EQ(validate_password(std::string(257, 'p')).code(), Errc::malformed);
  // 4 two-byte characters = 8 bytes but only 4 characters.
  EXPECT_EQ(validate_password("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9").code(), Errc::malformed);
  EXPECT_TRUE(validate_password("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9").ok());
}

TEST_F(AccountsTest, RegisterLoginAuthenticateLogout) {
  auto reg = accounts_->register_user("alice", "s3cret-pass", "10.0.0.1");
  ASSERT_TRUE(reg.ok()) << reg.error().message();
  EXPECT_GT(reg->user.id, 0);
  EXPECT_EQ(reg->user.username, "alice");
  EXPECT_EQ(reg->user.role, store::kRoleUser);
  EXPECT_TRUE(reg->user.password_hash.empty());
  EXPECT_EQ(reg->token.size(), 43u);
  EXPECT_EQ(reg->expires_at_ms, wall_ + 2'592'000'000);

  // The stored user has an Argon2id hash, the stored session only the token's hash.
  auto stored = store_->user_by_name("alice");
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(verify_password(stored->password_hash, "s3cret-pass"));
  auto sess = store_->session_by_token_hash(token_hash(reg->token));
  ASSERT_TRUE(sess.ok());
  EXPECT_EQ(sess->user_id, reg->user.id);
  EXPECT_FALSE(store_->session_by_token_hash(reg->token).ok());

  auto id = accounts_->authenticate(reg->token);
  ASSERT_TRUE(id.ok()) << id.error().message();
  EXPECT_EQ(id->user.id, reg->user.id);
  EXPECT_TRUE(id->user.password_hash.empty());

  auto login = accounts_->login("alice", "s3cret-pass", "10.0.0.1");
  ASSERT_TRUE(login.ok()) << login.error().message();
  EXPECT_NE(login->token, reg->token);

  ASSERT_TRUE(accounts_->logout(reg->token).ok());
  EXPECT_EQ(accounts_->authenticate(reg->token).code(), Errc::unauthorized);
  EXPECT_TRUE(accounts_->authenticate(login->token).ok());  // other sessions survive
  EXPECT_TRUE(accounts_->logout(reg->token).ok());           // idempotent
}

TEST_F(AccountsTest, RegisterValidatesAndRefusesTakenNames) {
  EXPECT_EQ(accounts_->register_user("al", "s3cret-pass", "c").code(), Errc::malformed);
  EXPECT_EQ(accounts_->register_user("alice", "short", "c").code(), Errc::malformed);
  ASSERT_TRUE(accounts_->register_user("alice", "s3cret-pass", "c").ok());
  EXPECT_EQ(accounts_->register_user("alice", "other-pass1", "c").code(), Errc::conflict);
}

TEST_F(AccountsTest, RegistrationCanBeDisabled) {
  AuthConfig cfg;
  cfg.allow_registration = false;
  make_accounts(cfg);
  EXPECT_EQ(accounts_->register_user("alice", "s3cret-pass", "c").code(), Errc::forbidden);
  EXPECT_EQ(store_->count_users().value(), 0);
}

TEST_F(AccountsTest, WrongPasswordUnknownUserAndGuestsAllFailAlike) {
  ASSERT_TRUE(accounts_->register_user("alice", "s3cret-pass", "c").ok());
  auto wrong = accounts_->login("alice", "wrong-pass", "c");
  auto unknown = accounts_->login("nobody", "s3cret-pass", "c");
  auto bad = accounts_->login("x", "s3cret-pass", "c");
  EXPECT_EQ(wrong.code(), Errc::unauthorized);
  EXPECT_EQ(unknown.code(), Errc::unauthorized);
  EXPECT_EQ(bad.code(), Errc::unauthorized);
  EXPECT_EQ(wrong.error().detail, unknown.error().detail);

  auto guest = accounts_->create_guest("Visitor", "c");
  ASSERT_TRUE(guest.ok()) << guest.error().message();
  EXPECT_EQ(accounts_->login(guest->user.username, "", "c").code(), Errc::unauthorized);
}

TEST_F(AccountsTest, UnknownUserStillSpendsAHashComputation) {
  ASSERT_TRUE(accounts_->register_user("alice", "s3cret-pass", "c").ok());
  (void)accounts_->login("warmup", "whatever-pass", "c");  // builds the dummy hash once
  auto time = [&](const char* user, const char* client) {
    const auto t0 = std::chrono::steady_clock::now();
    (void)accounts_->login(user, "wrong-pass", client);
    return std::chrono::steady_clock::now() - t0;
  };
  const auto known = time("alice", "d");
  const auto unknown = time("nobody", "e");
  // An Argon2id verification takes tens of ms; a skipped one would take microseconds.
  EXPECT_GT(unknown, known / 4) << "unknown-user login returned much faster than a real check";
  EXPECT_GT(unknown, std::chrono::milliseconds(5));
}

TEST_F(AccountsTest, LoginIsRateLimitedPerUserAndClient) {
  ASSERT_TRUE(accounts_->register_user("alice", "s3cret-pass", "setup").ok());
  int64_t retry = 0;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(accounts_->login("alice", "wrong-pass", "1.2.3.4").code(), Errc::unauthorized);
  auto limited = accounts_->login("alice", "s3cret-pass", "1.2.3.4", &retry);
  EXPECT_EQ(limited.code(), Errc::rate_limited);
  EXPECT_EQ(retry, 12'000);
  // Another client address is not affected by this one's bucket.
  EXPECT_TRUE(accounts_->login("alice", "s3cret-pass", "5.6.7.8").ok());
  mono_ += 12'000;
  EXPECT_TRUE(accounts_->login("alice", "s3cret-pass", "1.2.3.4").ok());
}

TEST_F(AccountsTest, LoginIsRateLimitedPerClientAcrossUsernames) {
  AuthConfig cfg;
  cfg.login_rate_per_min = 2;  // 12 per minute per client, whatever the usernames
  make_accounts(cfg);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(accounts_->login("user" + std::to_string(i), "x", "9.9.9.9").code(), Errc::unauthorized) << i;
  }
  int64_t retry = 0;
  EXPECT_EQ(accounts_->login("another", "x", "9.9.9.9", &retry).code(), Errc::rate_limited);
  EXPECT_EQ(retry, 5'000);
  EXPECT_EQ(accounts_->login("another", "x", "9.9.9.10").code(), Errc::unauthorized);
}

TEST_F(AccountsTest, ExpiredSessionIsRefusedAndDeleted) {
  auto reg = accounts_->register_user("alice", "s3cret-pass", "c");
  ASSERT_TRUE(reg.ok());
  wall_ = reg->expires_at_ms - 1;
  EXPECT_TRUE(accounts_->authenticate(reg->token).ok());
  wall_ = reg->expires_at_ms;
  EXPECT_EQ(accounts_->authenticate(reg->token).code(), Errc::unauthorized);
  EXPECT_EQ(store_->session_by_token_hash(token_hash(reg->token)).code(), Errc::not_found);
}

TEST_F(AccountsTest, PurgeRemovesOnlyExpiredSessions) {
  auto a = accounts_->register_user("alice", "s3cret-pass", "c");
  ASSERT_TRUE(a.ok());
  wall_ += 1000;
  auto b = accounts_->login("alice", "s3cret-pass", "c");
  ASSERT_TRUE(b.ok());
  wall_ = a->expires_at_ms;
  auto n = accounts_->purge_expired_sessions();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_TRUE(accounts_->authenticate(b->token).ok());
}

TEST_F(AccountsTest, GarbageTokensAreUnauthorized) {
  EXPECT_EQ(accounts_->authenticate("").code(), Errc::unauthorized);
  EXPECT_EQ(accounts_->authenticate("nope").code(), Errc::unauthorized);
  EXPECT_EQ(accounts_->authenticate(std::string(1000, 'a')).code(), Errc::unauthorized);
}

TEST_F(AccountsTest, GuestsGetASuffixedNameAndASession) {
  auto g = accounts_->create_guest("Bob", "c");
  ASSERT_TRUE(g.ok()) << g.error().message();
  EXPECT_EQ(g->user.role, store::kRoleGuest);
  EXPECT_EQ(g->user.username.rfind("Bob#", 0), 0u);
  EXPECT_EQ(g->user.username.size(), 10u);
  auto id = accounts_->authenticate(g->token);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->user.role, store::kRoleGuest);
  auto g2 = accounts_->create_guest("Bob", "c");
  ASSERT_TRUE(g2.ok());
  EXPECT_NE(g2->user.username, g->user.username);
  EXPECT_EQ(accounts_->create_guest("", "c").code(), Errc::malformed);
  EXPECT_EQ(accounts_->create_guest("   ", "c").code(), Errc::malformed);
  EXPECT_EQ(accounts_->create_guest("a\nb", "c").code(), Errc::malformed);
  EXPECT_EQ(accounts_->create_guest(std::string(25, 'g'), "c").code(), Errc::malformed);
  EXPECT_TRUE(accounts_->create_guest("Zoë ☕", "c").ok());
}

TEST_F(AccountsTest, CreateUserForTheAdminCli) {
  auto u = accounts_->create_user("root1", "admin-pass-1", "admin");
  ASSERT_TRUE(u.ok()) << u.error().message();
  EXPECT_EQ(u->role, store::kRoleAdmin);
  EXPECT_TRUE(u->password_hash.empty());
  EXPECT_EQ(accounts_->create_user("root1", "admin-pass-1", "admin").code(), Errc::conflict);
  EXPECT_EQ(accounts_->create_user("x2", "admin-pass-1", "admin").code(), Errc::malformed);
  EXPECT_EQ(accounts_->create_user("root2", "admin-pass-1", "guest").code(), Errc::malformed);
  EXPECT_EQ(accounts_->create_user("root2", "admin-pass-1", "superuser").code(), Errc::malformed);
  auto login = accounts_->login("root1", "admin-pass-1", "c");
  ASSERT_TRUE(login.ok());
  EXPECT_EQ(login->user.role, store::kRoleAdmin);
}

}  // namespace
}  // namespace castmesh::auth
