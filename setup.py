"""The one compiled part: the ring nonlinearity's CPU kernel (methods/fourier/_ring_native.cpp).

Everything else is in pyproject.toml. The kernel is optional: without a C++ compiler the
install goes on, and the Fourier network computes the same function with tensor operations
(``bench perf`` and ``scaleqbench.methods.fourier.native.status()`` say which path runs).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "scaleqbench.methods.fourier._ring_native",
    sources=["methods/fourier/_ring_native.cpp"],
    language="c++",
    # gnu++17, not c++17: GCC contracts a * b + c to FMA only in its GNU modes
    # -Wno-psabi: the portable build's vector helpers are internal, their ABI never crosses
    extra_compile_args=["-std=gnu++17", "-O3", "-fno-exceptions", "-fno-rtti", "-Wno-psabi"],
    optional=True,
)])
