// FunctionRef<R(Args...)>: a non-owning, non-allocating reference to a
// callable (like LLVM's function_ref). Two words: the callable's address and a
// trampoline that calls it. It does not extend the callable's life: pass it
// down a call, never store it beyond the callable's scope (a lambda written
// as the argument lives until the end of the full expression, which covers
// the call it is passed to).
#pragma once

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace cgcore {

template <typename Fn>
class FunctionRef;

template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  // Refers to `f`: a function, a function pointer, or any object callable as
  // R(Args...) (which must outlive every call through this reference).
  template <typename F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> &&
             std::is_invocable_r_v<R, F&, Args...>)
  FunctionRef(F&& f) noexcept {  // NOLINT: implicit, as a callable argument
    using T = std::remove_reference_t<F>;
    if constexpr (std::is_function_v<T> || std::is_pointer_v<std::remove_cv_t<T>>) {
      // A function is not an object: keep its address as a function pointer.
      target_.fn = reinterpret_cast<void (*)()>(+f);
      call_ = [](Target t, Args... args) -> R {
        return std::invoke(reinterpret_cast<decltype(+std::declval<F&>())>(t.fn),
                           std::forward<Args>(args)...);
      };
    } else {
      target_.obj = const_cast<void*>(static_cast<const void*>(std::addressof(f)));
      call_ = [](Target t, Args... args) -> R {
        return std::invoke(*static_cast<T*>(t.obj), std::forward<Args>(args)...);
      };
    }
  }
  FunctionRef(const FunctionRef&) noexcept = default;
  FunctionRef& operator=(const FunctionRef&) noexcept = default;

  R operator()(Args... args) const { return call_(target_, std::forward<Args>(args)...); }

 private:
  union Target {
    void* obj;
    void (*fn)();
  };
  Target target_;
  R (*call_)(Target, Args...);
};

}  // namespace cgcore
