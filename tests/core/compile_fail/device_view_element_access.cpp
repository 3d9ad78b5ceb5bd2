// Must NOT compile: a view of device memory has no element access on the host, so a host loop
// over activations, caches or weights of a device backend is a compile error (DESIGN.md §3).
// Built by ctest (test_device_view_has_no_element_access) with MOE_COMPILE_FAIL_CASE = 1..4, one
// forbidden access each; the test passes only when the build fails on the constraint.
#include <moe/core/tensor.hpp>
#include <moe/layers/linear.hpp>

float host_loop(moe::DeviceView<float, 2> x, moe::layers::WeightVector<moe::device_memory> w) {
  float s = 0;
#if MOE_COMPILE_FAIL_CASE == 1
  for (moe::index_t i = 0; i < x.extent(0); ++i) s += x(i, 0);  // operator()
#elif MOE_COMPILE_FAIL_CASE == 2
  s += x.at(0, 0);  // at()
#elif MOE_COMPILE_FAIL_CASE == 3
  s += x[0][0];  // operator[] down to an element
#elif MOE_COMPILE_FAIL_CASE == 4
  s += w.view<float>()[0];  // a device weight only yields device views
#endif
  return s;
}

// A host view of the same shape compiles (the control case, MOE_COMPILE_FAIL_CASE = 0).
float host_ok(moe::View<float, 2> x) { return x(0, 0) + x.at(0, 0) + x[0][0]; }
