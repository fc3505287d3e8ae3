// A doubly linked intrusive list: the links live inside the elements, so
// linking, unlinking and moving an element between lists never allocates.
// This is what lets a migration track any number of tasks without memory of
// its own, and so fail only where it allocates css_sets, before anything has
// changed. Not thread-safe: each list's owner names its lock.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cgcore {

// The offset of member `m` inside T, computed from the member pointer
// without a real object (T need not be standard-layout for this to hold in
// practice on the compilers we build with).
template <typename T, typename M>
uintptr_t member_offset(M T::*m) {
  alignas(T) static unsigned char probe[sizeof(T)];
  T* fake = reinterpret_cast<T*>(probe);
  return reinterpret_cast<uintptr_t>(&(fake->*m)) - reinterpret_cast<uintptr_t>(fake);
}

// The links. An unlinked hook has null pointers. Not copyable: an element's
// identity is its address.
struct ListHook {
  ListHook* prev = nullptr;
  ListHook* next = nullptr;

  ListHook() = default;
  ListHook(const ListHook&) = delete;
  ListHook& operator=(const ListHook&) = delete;

  bool linked() const { return next != nullptr; }
  // Removes the element from whatever list holds it. REQUIRES: linked().
  void unlink() {
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

// A list of T threaded through the member `Hook` of each T.
template <typename T, ListHook T::*Hook>
class IntrusiveList {
 public:
  IntrusiveList() { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return head_.next == &head_; }
  T* front() const { return empty() ? nullptr : owner(head_.next); }

  // REQUIRES: the element is on no list.
  void push_back(T& elem) { insert_before(&head_, &(elem.*Hook)); }
  void push_front(T& elem) { insert_before(head_.next, &(elem.*Hook)); }

  // Moves every element of `other` to the end of this list; O(1).
  void splice_back(IntrusiveList& other) {
    if (other.empty()) return;
    ListHook* first = other.head_.next;
    ListHook* last = other.head_.prev;
    other.head_.prev = other.head_.next = &other.head_;
    first->prev = head_.prev;
    head_.prev->next = first;
    last->next = &head_;
    head_.prev = last;
  }

  // Whether `elem` is on this very list (O(n); for checks and tests).
  bool contains(const T& elem) const {
    for (const ListHook* h = head_.next; h != &head_; h = h->next)
      if (h == &(elem.*Hook)) return true;
    return false;
  }

  class iterator {
   public:
    explicit iterator(ListHook* h) : h_(h) {}
    T& operator*() const { return *owner(h_); }
    T* operator->() const { return owner(h_); }
    iterator& operator++() {
      h_ = h_->next;
      return *this;
    }
    bool operator==(const iterator& o) const { return h_ == o.h_; }
    bool operator!=(const iterator& o) const { return h_ != o.h_; }

   private:
    ListHook* h_;
  };
  // Iteration is invalidated by unlinking the current element; callers that
  // unlink while walking use for_each_safe.
  iterator begin() const { return iterator(head_.next); }
  iterator end() const { return iterator(const_cast<ListHook*>(&head_)); }

  // Calls fn(T&) for each element; fn may unlink (or move) the element it
  // was given, but no other.
  template <typename Fn>
  void for_each_safe(Fn&& fn) const {
    ListHook* h = head_.next;
    while (h != &head_) {
      ListHook* next = h->next;
      fn(*owner(h));
      h = next;
    }
  }

  static T* owner(const ListHook* h) {
    return reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(h) - hook_offset());
  }

 private:
  static void insert_before(ListHook* pos, ListHook* h) {
    h->prev = pos->prev;
    h->next = pos;
    pos->prev->next = h;
    pos->prev = h;
  }
  static uintptr_t hook_offset() { return member_offset(Hook); }

  ListHook head_;
};

}  // namespace cgcore
