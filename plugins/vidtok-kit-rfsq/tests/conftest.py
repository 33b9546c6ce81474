"""Opt in to vidtok-kit's contract mixins and fixtures here, not in a test module: a test module
imports ``vidtok_kit.testing`` before pytest reads its ``pytest_plugins``, so pytest cannot rewrite
the asserts of the mixins and warns (``PytestAssertRewriteWarning``).
"""

pytest_plugins = ["vidtok_kit.testing"]
