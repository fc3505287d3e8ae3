// Clang thread-safety analysis attributes.
//
// Under clang with -Wthread-safety the compiler checks that every access to a
// CG_GUARDED_BY member happens with its lock held and that functions marked
// CG_REQUIRES are only called by holders. Under other compilers the macros
// expand to nothing. These are the only macros the project defines; they exist
// because the attributes have no portable spelling.
#pragma once

#if defined(__clang__)
#define CG_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CG_THREAD_ANNOTATION(x)
#endif

#define CG_CAPABILITY(x) CG_THREAD_ANNOTATION(capability(x))
#define CG_SCOPED_CAPABILITY CG_THREAD_ANNOTATION(scoped_lockable)
#define CG_GUARDED_BY(x) CG_THREAD_ANNOTATION(guarded_by(x))
#define CG_PT_GUARDED_BY(x) CG_THREAD_ANNOTATION(pt_guarded_by(x))
#define CG_ACQUIRED_AFTER(...) CG_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define CG_REQUIRES(...) CG_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define CG_REQUIRES_SHARED(...) \
  CG_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define CG_ACQUIRE(...) CG_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define CG_ACQUIRE_SHARED(...) \
  CG_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define CG_RELEASE(...) CG_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define CG_RELEASE_SHARED(...) \
  CG_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define CG_RELEASE_GENERIC(...) \
  CG_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define CG_EXCLUDES(...) CG_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define CG_ASSERT_CAPABILITY(x) CG_THREAD_ANNOTATION(assert_capability(x))
#define CG_ASSERT_SHARED_CAPABILITY(x) \
  CG_THREAD_ANNOTATION(assert_shared_capability(x))
#define CG_RETURN_CAPABILITY(x) CG_THREAD_ANNOTATION(lock_returned(x))
#define CG_NO_THREAD_SAFETY_ANALYSIS \
  CG_THREAD_ANNOTATION(no_thread_safety_analysis)
