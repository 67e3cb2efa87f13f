"""Run CPython's own test modules and print each test's outcome as JSON.

Usage: python cpython_suite_runner.py EXPECTED_ZLIB_FILE_SUFFIX test.test_zlib ...

Run by test_zlib_cpython_suite.py in a subprocess, once with tests/zlib/shim
first on sys.path (so ``import zlib`` is spore.zlib) and once without; it first
checks that ``zlib`` really is the module the caller meant to test.
"""

from __future__ import annotations

import json
import sys
import unittest


class _Recorder(unittest.TestResult):
    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, list[str]] = {}

    def addSuccess(self, test: unittest.TestCase) -> None:
        self.outcomes[test.id()] = ["pass", ""]

    def addFailure(self, test: unittest.TestCase, err: object) -> None:
        super().addFailure(test, err)  # type: ignore[arg-type]
        self.outcomes[test.id()] = ["fail", self.failures[-1][1][-2000:]]

    def addError(self, test: unittest.TestCase, err: object) -> None:
        super().addError(test, err)  # type: ignore[arg-type]
        self.outcomes[test.id()] = ["error", self.errors[-1][1][-2000:]]

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self.outcomes[test.id()] = ["skip", reason]

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: object) -> None:
        if err is not None:
            super().addSubTest(test, subtest, err)  # type: ignore[arg-type]
            self.outcomes[subtest.id()] = ["fail", str(err)[-2000:]]


def main() -> None:
    import zlib

    expected_suffix, *modules = sys.argv[1:]
    where = getattr(zlib, "__file__", "")
    if not where.endswith(expected_suffix):
        raise SystemExit(f"zlib is {where!r}, expected a file ending {expected_suffix!r}")
    suite = unittest.defaultTestLoader.loadTestsFromNames(modules)
    result = _Recorder()
    suite.run(result)
    print(json.dumps({"zlib": where, "outcomes": result.outcomes}))


if __name__ == "__main__":
    main()
