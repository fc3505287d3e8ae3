// A counting global allocator for the benchmarks (core_bench, cgbench).
//
// Linking counting_allocator.cc into a binary replaces every global operator
// new / new[] (plain, nothrow, aligned) by one that bumps a relaxed atomic
// counter and calls malloc (or aligned_alloc); operator delete calls free.
// nr_allocs() reads the counter: take it before and after an operation to
// count the heap allocations the operation made (any thread's).
//
// Built with CGCORE_BENCH_NO_ALLOC_COUNTING (sanitizer builds, whose runtimes
// replace operator new themselves) the replacement is left out and
// kAllocCounting is false: nr_allocs() then always reads 0.
#pragma once

#include <cstdint>

namespace cgcore::bench {

#ifdef CGCORE_BENCH_NO_ALLOC_COUNTING
inline constexpr bool kAllocCounting = false;
#else
inline constexpr bool kAllocCounting = true;
#endif

// Allocations made through the global operator new since the start.
uint64_t nr_allocs();

}  // namespace cgcore::bench
