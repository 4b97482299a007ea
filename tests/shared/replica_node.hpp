// A named replica for tests that read like the paper: alice, bob, server.
// Each node has its own fake wall clock, HLC, op maker and state.
#pragma once

#include "otsync/crdt.hpp"
#include "otsync/hlc.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace otsync::test {

struct Node {
    Node(std::string node_name, std::uint64_t replica, std::uint64_t wall_ms)
        : name(std::move(node_name)), clock(wall_ms), hlc(clock),
          user(Id::natural("user", this->name)), maker(replica, hlc, user) {}
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    /// Applies a locally made op and remembers it for delivery.
    const Op& local(Op op) {
        const auto r = state.apply(op);
        REQUIRE_MESSAGE(r.applied(), name << ": local op not applied");
        made.push_back(std::move(op));
        return made.back();
    }
    const Op& set(EntityType t, const Id& e, std::string_view field, Value v) {
        if (field_def(t, field).lifecycle) {
            return local(maker.set_status(state, t, e, field, std::move(v)));
        }
        return local(maker.set(t, e, field, std::move(v)));
    }
    const Op& add(EntityType t, const Id& e, std::string_view field, Value v) {
        return local(maker.add(t, e, field, std::move(v)));
    }
    const Op& remove(EntityType t, const Id& e, std::string_view field, Value v) {
        return local(maker.remove(state, t, e, field, std::move(v)));
    }
    const Op& event(EntityType t, const Id& e, std::string_view field, Value v) {
        return local(maker.event(t, e, field, std::move(v)));
    }
    /// Delivers ops made elsewhere; the clock learns from them as a real sync would.
    void receive(const std::vector<Op>& ops) {
        for (const auto& op : ops) {
            hlc.receive(op.hlc);
            state.apply(op);
        }
    }
    void receive(const Node& other) { receive(other.made); }

    std::string name;
    FakeClock clock;
    Hlc hlc;
    Id user;
    crdt::OpMaker maker;
    crdt::Replica state;
    std::vector<Op> made;
};

} // namespace otsync::test
