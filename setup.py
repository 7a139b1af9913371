"""Build the optional Cython kernels in _native/.

The project works without them (pure twins are used, with a warning), so a
failed compile must never fail the install: each extension is built
best-effort.
"""
import glob
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on toolchain
            print(f"warning: native kernels not built ({exc}); pure-Python twins will be used")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover
            print(f"warning: {ext.name} not built ({exc})")


def extensions():
    if os.environ.get("RINGSTACK_NO_NATIVE"):
        return []
    try:
        import numpy
        from Cython.Build import cythonize
    except ImportError:
        return []
    from setuptools import Extension

    exts = []
    for pyx in sorted(glob.glob("_native/*.pyx")):
        name = pyx[:-4].replace(os.sep, ".")
        exts.append(
            Extension(
                name,
                [pyx],
                include_dirs=[numpy.get_include()],
                extra_compile_args=["-O3"],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return cythonize(exts, language_level=3, quiet=True) if exts else []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
