#include "proto/ws/room_backend.hpp"

namespace castmesh::ws {

namespace {

class ManagerSession final : public RoomSession {
 public:
  ManagerSession(room::RoomManager& rooms, std::shared_ptr<room::Attachment> a)
      : rooms_(rooms), attachment_(std::move(a)) {}
  ~ManagerSession() override { rooms_.detach(*attachment_); }
  void on_message(std::string_view json_text) override { rooms_.on_message(*attachment_, json_text); }

 private:
  room::RoomManager& rooms_;
  std::shared_ptr<room::Attachment> attachment_;
};

class ManagerBackend final : public RoomBackend {
 public:
  explicit ManagerBackend(room::RoomManager& rooms) : rooms_(rooms) {}
  Result<std::unique_ptr<RoomSession>> attach(const std::string& room_id, const room::Identity& who,
                                              std::shared_ptr<room::Connection> conn) override {
    auto a = rooms_.attach(room_id, who, std::move(conn));
    if (!a) return a.error();
    return std::unique_ptr<RoomSession>(std::make_unique<ManagerSession>(rooms_, std::move(a.value())));
  }

 private:
  room::RoomManager& rooms_;
};

}  // namespace

std::unique_ptr<RoomBackend> make_room_backend(room::RoomManager& rooms) {
  return std::make_unique<ManagerBackend>(rooms);
}

}  // namespace castmesh::ws
