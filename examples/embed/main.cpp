// The smallest host application: include <moe/moe.hpp>, link moe::moe.
#include <moe/moe.hpp>

#include <cstdio>

int main() {
  moe::Tensor<float, 2> x({2, 3});
  x(1, 2) = 1.5f;
  const float back = moe::to_float(moe::to_bf16(x(1, 2)));
  std::printf("moecpp embedded: bf16 round trip of 1.5 = %g\n", back);
  return back == 1.5f ? 0 : 1;
}
