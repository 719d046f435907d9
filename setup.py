"""The one compiled part: the Fourier network's CPU kernels, the ring nonlinearity's
(methods/fourier/_ring_native.cpp), the spectral mixing's (_mix_native.cpp) and the band
moments' (_moments_native.cpp), in one library.

Everything else is in pyproject.toml. The kernels are optional: without a C++ compiler the
install goes on, and the Fourier network computes the same function with tensor operations
(``bench perf`` and ``scaleqbench.methods.fourier.native.status()`` say which path runs).
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """With OpenMP where the compiler has it (the kernels' tasks then run on PyTorch's own
    thread team: see methods/fourier/kernels.h), else without (a pool of threads runs them)."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception:  # noqa: BLE001 -- any compiler or linker failure: once more, plainly
            if "-fopenmp" not in ext.extra_compile_args:
                raise
            ext.extra_compile_args = [a for a in ext.extra_compile_args if a != "-fopenmp"]
            ext.extra_link_args = [a for a in ext.extra_link_args if a != "-fopenmp"]
            super().build_extension(ext)


setup(cmdclass={"build_ext": BuildExt}, ext_modules=[Extension(
    "scaleqbench.methods.fourier._ring_native",
    sources=["methods/fourier/_ring_native.cpp", "methods/fourier/_mix_native.cpp",
             "methods/fourier/_moments_native.cpp"],
    depends=["methods/fourier/kernels.h", "methods/fourier/kernel_builds.inc"],
    language="c++",
    # gnu++17, not c++17: GCC contracts a * b + c to FMA only in its GNU modes
    # -Wno-psabi: the portable build's vector helpers are internal, their ABI never crosses
    extra_compile_args=["-std=gnu++17", "-O3", "-fno-exceptions", "-fno-rtti", "-Wno-psabi",
                        "-fopenmp"],
    extra_link_args=["-fopenmp"],
    optional=True,
)])
