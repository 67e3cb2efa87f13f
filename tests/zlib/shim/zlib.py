"""Stand-in for CPython's zlib extension module: everything comes from spore.zlib.

Put this directory first on sys.path (tests/zlib/test_cpython_suite.py does, in
a subprocess) and ``import zlib`` -- and so gzip, zipfile, CPython's own
test_zlib and test_gzip -- run on spore.zlib.
"""

from spore.zlib import *  # noqa: F403
from spore.zlib import __all__  # noqa: F401
