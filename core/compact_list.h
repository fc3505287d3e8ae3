// A doubly linked intrusive list, as core/intrusive_list.h's, whose links
// are 32-bit CompactRefs (core/compact_arena.h) instead of pointers: a hook
// takes 8 bytes. The elements and the list itself (its head hook) must live
// in the compact arena, where everything has a ref: they come from Slabs.
// Tasks are threaded on their css_set and their process this way. Not
// thread-safe: each list's owner names its lock.
#pragma once

#include <cassert>
#include <cstdint>

#include "core/compact_arena.h"
#include "core/intrusive_list.h"

namespace cgcore {

// The links. An unlinked hook holds zeros. Aligned to the arena's unit, so
// that every hook has a ref. Not copyable: an element's identity is its
// address.
struct alignas(CompactArena::kUnit) CompactHook {
  CompactRef prev = 0;
  CompactRef next = 0;

  CompactHook() = default;
  CompactHook(const CompactHook&) = delete;
  CompactHook& operator=(const CompactHook&) = delete;

  bool linked() const { return next != 0; }
  // Removes the element from whatever list holds it. REQUIRES: linked().
  void unlink() {
    CompactHook* p = at(prev);
    CompactHook* n = at(next);
    p->next = next;
    n->prev = prev;
    prev = next = 0;
  }

  // A list's links are never 0.
  static CompactHook* at(CompactRef r) { return compact_ptr_nonnull<CompactHook>(r); }
};

// A list of T threaded through the member `Hook` of each T.
// REQUIRES: every element, and the list, live in the compact arena.
template <typename T, CompactHook T::*Hook>
class CompactList {
 public:
  CompactList() {
    assert(CompactArena::instance().contains(this));
    head_.prev = head_.next = self();
  }
  CompactList(const CompactList&) = delete;
  CompactList& operator=(const CompactList&) = delete;

  bool empty() const { return head_.next == self(); }
  T* front() const { return empty() ? nullptr : owner(head_.next); }

  // REQUIRES: the element is on no list.
  void push_back(T& elem) { insert_before(self(), elem); }

  // Moves every element of `other` to the end of this list; O(1).
  void splice_back(CompactList& other) {
    if (other.empty()) return;
    const CompactRef first = other.head_.next;
    const CompactRef last = other.head_.prev;
    CompactHook* f = CompactHook::at(first);
    CompactHook* l = CompactHook::at(last);
    CompactHook* tail = CompactHook::at(head_.prev);
    other.head_.prev = other.head_.next = other.self();
    f->prev = head_.prev;
    tail->next = first;
    l->next = self();
    head_.prev = last;
  }

  // Whether `elem` is on this very list (O(n); for checks and tests).
  bool contains(const T& elem) const {
    const CompactRef want = compact_ref_nonnull(&(elem.*Hook));
    for (CompactRef h = head_.next; h != self(); h = CompactHook::at(h)->next)
      if (h == want) return true;
    return false;
  }

  class iterator {
   public:
    explicit iterator(CompactRef h) : h_(h) {}
    T& operator*() const { return *owner(h_); }
    T* operator->() const { return owner(h_); }
    iterator& operator++() {
      h_ = CompactHook::at(h_)->next;
      return *this;
    }
    bool operator==(const iterator& o) const { return h_ == o.h_; }
    bool operator!=(const iterator& o) const { return h_ != o.h_; }

   private:
    CompactRef h_;
  };
  // Iteration is invalidated by unlinking the current element; callers that
  // unlink while walking use for_each_safe.
  iterator begin() const { return iterator(head_.next); }
  iterator end() const { return iterator(self()); }

  // Calls fn(T&) for each element; fn may unlink (or move) the element it
  // was given, but no other.
  template <typename Fn>
  void for_each_safe(Fn&& fn) const {
    const CompactRef end = self();
    CompactRef h = head_.next;
    while (h != end) {
      const CompactRef next = CompactHook::at(h)->next;
      fn(*owner(h));
      h = next;
    }
  }

 private:
  static T* owner(CompactRef h) {
    return reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(CompactHook::at(h)) -
                                member_offset(Hook));
  }
  void insert_before(CompactRef pos, T& elem) {
    CompactHook& h = elem.*Hook;
    const CompactRef r = compact_ref_nonnull(&h);
    CompactHook* p = CompactHook::at(pos);
    CompactHook* before = CompactHook::at(p->prev);
    h.prev = p->prev;
    h.next = pos;
    before->next = r;
    p->prev = r;
  }

  CompactRef self() const { return compact_ref_nonnull(&head_); }

  CompactHook head_;
};

}  // namespace cgcore
