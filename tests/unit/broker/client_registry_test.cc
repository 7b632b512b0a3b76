// ClientRegistry: claim / takeover decisions, handover marks, concurrent claims.
#include "broker/client_registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "broker/session.h"

namespace tcpms::broker {
namespace {

TEST(ClientRegistry, ClaimCreatesThenFindsLocalOrRemote) {
  ClientRegistry reg;
  std::unique_ptr<Session> owned;
  auto make = [&] {
    owned = std::make_unique<Session>("dev-1");
    return owned.get();
  };
  auto c1 = reg.claim("dev-1", 0, ConnId::make(0, 1, 1), make);
  EXPECT_EQ(c1.kind, ClientRegistry::ClaimKind::kCreated);
  EXPECT_EQ(c1.entry.session, owned.get());
  auto c2 = reg.claim("dev-1", 0, ConnId::make(0, 2, 1), make);
  EXPECT_EQ(c2.kind, ClientRegistry::ClaimKind::kLocal);
  auto c3 = reg.claim("dev-1", 1, ConnId::make(1, 2, 1), make);
  EXPECT_EQ(c3.kind, ClientRegistry::ClaimKind::kRemote);
  EXPECT_EQ(c3.entry.loop, 0u);
  EXPECT_EQ(reg.size(), 1u);
}

TEST(ClientRegistry, HandoverMarksInTransit) {
  ClientRegistry reg;
  Session s("x");
  reg.claim("x", 0, ConnId::make(0, 1, 1), [&] { return &s; });
  EXPECT_FALSE(reg.begin_handover("x", &s, 1, 2, ConnId::make(2, 1, 1)));  // not the owner
  EXPECT_TRUE(reg.begin_handover("x", &s, 0, 2, ConnId::make(2, 1, 1)));
  EXPECT_FALSE(reg.begin_handover("x", &s, 0, 3, ConnId::make(3, 1, 1)));  // already moving
  auto busy = reg.claim("x", 3, ConnId::make(3, 1, 1), [] { return nullptr; });
  EXPECT_EQ(busy.kind, ClientRegistry::ClaimKind::kBusy);
  EXPECT_FALSE(reg.owns("x", &s, 2));
  reg.finish_handover("x", &s);
  EXPECT_TRUE(reg.owns("x", &s, 2));
  EXPECT_EQ(reg.find("x")->conn, ConnId::make(2, 1, 1));
  reg.set_conn("x", &s, ConnId{});
  EXPECT_FALSE(reg.find("x")->conn.valid());
  Session other("x");
  EXPECT_FALSE(reg.remove("x", &other));  // only the registered session removes itself
  EXPECT_TRUE(reg.remove("x", &s));
  EXPECT_FALSE(reg.find("x"));
}

TEST(ClientRegistry, TicketsAndVisitingEverySession) {
  ClientRegistry reg;
  Session s("t"), u("u");
  reg.claim("t", 0, ConnId::make(0, 1, 1), [&] { return &s; });
  reg.claim("u", 1, ConnId::make(1, 1, 1), [&] { return &u; });
  EXPECT_EQ(reg.find("t")->ticket, 0u);  // none until the router's claim says
  Session other("t");
  reg.set_ticket("t", &other, 7);  // not the registered session: ignored
  EXPECT_EQ(reg.find("t")->ticket, 0u);
  reg.set_ticket("t", &s, 7);
  EXPECT_EQ(reg.find("t")->ticket, 7u);
  // A handover between loops keeps the ticket.
  ASSERT_TRUE(reg.begin_handover("t", &s, 0, 1, ConnId::make(1, 2, 1)));
  EXPECT_EQ(reg.find("t")->ticket, 7u);
  reg.finish_handover("t", &s);
  size_t visited = 0;
  uint32_t tickets = 0;
  reg.for_each([&](const RegistryEntry& e) {
    ++visited;
    tickets += e.ticket;
  });
  EXPECT_EQ(visited, 2u);
  EXPECT_EQ(tickets, 7u);
  reg.remove("t", &s);
  reg.remove("u", &u);
}

TEST(ClientRegistry, ConcurrentClaimsCreateOnce) {
  ClientRegistry reg;
  std::atomic<int> created{0};
  std::vector<std::unique_ptr<Session>> sessions(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 1000; ++i) {
        std::string id = "c" + std::to_string(i);
        reg.claim(id, static_cast<uint32_t>(t), ConnId::make(t, i, 1), [&] {
          created.fetch_add(1);
          return new Session(id);
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(created.load(), 1000);
  EXPECT_EQ(reg.size(), 1000u);
  for (int i = 0; i < 1000; ++i) {
    std::string id = "c" + std::to_string(i);
    auto e = reg.find(id);
    ASSERT_TRUE(e);
    Session* s = e->session;
    EXPECT_TRUE(reg.remove(id, s));
    delete s;
  }
}

}  // namespace
}  // namespace tcpms::broker
