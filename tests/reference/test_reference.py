# Test cases translated from github.com/distribution/reference (Apache-2.0).

"""Tests for kubesim_images.reference.

The tables cover the grammar rule by rule and translate the positive and negative cases of
distribution/reference's own reference_test.go, normalize_test.go and regexp_test.go (regexp
cases are checked through ``parse``, which is where they matter). Error texts are asserted
exactly because users see them in InvalidImageName events.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubesim_images.errors import InvalidReferenceError
from kubesim_images.reference import (
    DEFAULT_DOMAIN,
    DEFAULT_TAG,
    ImageReference,
    familiar_string,
    parse,
    parse_normalized,
)

if TYPE_CHECKING:
    from collections.abc import Callable

F64 = "f" * 64
SHA_F = f"sha256:{F64}"
SHA_DBCC = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHA_86 = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
SHA_E6 = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"
SHA_BE = "sha256:be178c0543eb17f5f3043021c9e5fcf30285e557a4fc309cce97ff9ca6182912"
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
LONG_NAMESPACE = "_".join(
    ["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4
)

FORMAT = "invalid reference format"
UPPER = "repository name must be lowercase"
EMPTY = "repository name must have at least one component"
TOO_LONG = "repository name must not be more than 255 characters"
DIGEST_FORMAT = "invalid checksum digest format"
DIGEST_LENGTH = "invalid checksum digest length"
DIGEST_UNSUPPORTED = "unsupported digest algorithm"


def lower_msg(remote: str) -> str:
    return f"invalid reference format: repository name ({remote}) must be lowercase"


def hex_msg(text: str) -> str:
    return f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"


def ref(
    domain: str, path: str, tag: str | None = None, digest: str | None = None
) -> ImageReference:
    return ImageReference(domain=domain, path=path, tag=tag, digest=digest)


def outcome(parser: Callable[[str], ImageReference], text: str) -> ImageReference | str:
    """The parsed reference, or the InvalidReferenceError's message."""
    try:
        return parser(text)
    except InvalidReferenceError as err:
        return str(err)


def raises_exactly(message: str) -> pytest.RaisesExc[InvalidReferenceError]:
    return pytest.raises(InvalidReferenceError, match=f"^{re.escape(message)}$")


# --------------------------------------------------------------------------------------------
# parse_normalized (ParseNormalizedNamed): grammar rules and normalisation
# --------------------------------------------------------------------------------------------

NORMALIZED_OK = [
    # Defaults: domain, library/ prefix, index.docker.io.
    pytest.param("nginx", ref("docker.io", "library/nginx"), id="bare-name"),
    pytest.param("nginx:1.25", ref("docker.io", "library/nginx", "1.25"), id="bare-name-tag"),
    pytest.param("library/nginx", ref("docker.io", "library/nginx"), id="library-path"),
    pytest.param("foo/bar", ref("docker.io", "foo/bar"), id="hub-namespace"),
    pytest.param("docker.io/nginx", ref("docker.io", "library/nginx"), id="docker.io-gets-library"),
    pytest.param("docker.io/foo/bar", ref("docker.io", "foo/bar"), id="docker.io-namespace"),
    pytest.param(
        "index.docker.io/nginx", ref("docker.io", "library/nginx"), id="index.docker.io-one"
    ),
    pytest.param(
        "index.docker.io/foo/bar:1", ref("docker.io", "foo/bar", "1"), id="index.docker.io-two"
    ),
    pytest.param(
        "registry-1.docker.io/nginx",
        ref("registry-1.docker.io", "nginx"),
        id="registry-1-is-not-hub",
    ),
    pytest.param(
        "docker.io:443/nginx", ref("docker.io:443", "nginx"), id="docker.io-with-port-not-hub"
    ),
    pytest.param(
        "registry.k8s.io/pause:3.9",
        ref("registry.k8s.io", "pause", "3.9"),
        id="other-registry-no-library",
    ),
    pytest.param(
        "gcr.io/library/busybox", ref("gcr.io", "library/busybox"), id="library-kept-elsewhere"
    ),
    # Domain detection.
    pytest.param("localhost/foo", ref("localhost", "foo"), id="localhost"),
    pytest.param("localhost:5000/foo:1", ref("localhost:5000", "foo", "1"), id="localhost-port"),
    pytest.param("example.com/foo", ref("example.com", "foo"), id="dot-domain"),
    pytest.param("example:5000/foo", ref("example:5000", "foo"), id="colon-domain"),
    pytest.param("Example.com/foo", ref("Example.com", "foo"), id="uppercase-dotted-domain"),
    pytest.param("Foo/bar", ref("Foo", "bar"), id="uppercase-first-component-is-domain"),
    pytest.param(
        "foo/bar/baz", ref("docker.io", "foo/bar/baz"), id="lowercase-first-component-is-path"
    ),
    pytest.param("localhost", ref("docker.io", "library/localhost"), id="bare-localhost-is-image"),
    pytest.param("example.com", ref("docker.io", "library/example.com"), id="bare-domain-is-image"),
    pytest.param(
        "example.com:5000",
        ref("docker.io", "library/example.com", "5000"),
        id="bare-host-port-is-tag",
    ),
    pytest.param("127.0.0.1:5000/foo", ref("127.0.0.1:5000", "foo"), id="ipv4-port"),
    pytest.param("[::1]:5000/foo", ref("[::1]:5000", "foo"), id="ipv6-loopback-port"),
    pytest.param("[2001:db8::1]/foo", ref("[2001:db8::1]", "foo"), id="ipv6-no-port"),
    pytest.param(
        "[2001:DB8::1]:5000/foo:v1", ref("[2001:DB8::1]:5000", "foo", "v1"), id="ipv6-uppercase-hex"
    ),
    pytest.param(
        "foo_bar.com/baz", ref("", "foo_bar.com/baz"), id="unmatchable-domain-falls-back-to-path"
    ),
    # Path separators.
    pytest.param("a.b/c", ref("a.b", "c"), id="dot-makes-domain"),
    pytest.param("foo/a.b", ref("docker.io", "foo/a.b"), id="sep-period"),
    pytest.param("foo/a_b", ref("docker.io", "foo/a_b"), id="sep-underscore"),
    pytest.param("foo/a__b", ref("docker.io", "foo/a__b"), id="sep-double-underscore"),
    pytest.param("foo/a-b", ref("docker.io", "foo/a-b"), id="sep-dash"),
    pytest.param("foo/a---b", ref("docker.io", "foo/a---b"), id="sep-many-dashes"),
    pytest.param("foo/a.b_c__d-e--f", ref("docker.io", "foo/a.b_c__d-e--f"), id="sep-mixed"),
    pytest.param(
        "example.com/some_separator__underscore/myimage",
        ref("example.com", "some_separator__underscore/myimage"),
        id="sep-in-namespace",
    ),
    pytest.param(
        "registry.io/foo/project--id.module--name.ver---sion--name",
        ref("registry.io", "foo/project--id.module--name.ver---sion--name"),
        id="sep-dashes-dots",
    ),
    # Tags.
    pytest.param("foo:Uppercase", ref("docker.io", "library/foo", "Uppercase"), id="tag-uppercase"),
    pytest.param("foo:_tag", ref("docker.io", "library/foo", "_tag"), id="tag-leading-underscore"),
    pytest.param(
        "foo:v1.2-rc_3", ref("docker.io", "library/foo", "v1.2-rc_3"), id="tag-punctuation"
    ),
    pytest.param("foo:" + "t" * 128, ref("docker.io", "library/foo", "t" * 128), id="tag-128"),
    pytest.param("foo:latest", ref("docker.io", "library/foo", "latest"), id="tag-latest"),
    # Digests.
    pytest.param(f"foo@{SHA_F}", ref("docker.io", "library/foo", None, SHA_F), id="digest-sha256"),
    pytest.param(
        f"foo@sha384:{'a' * 96}",
        ref("docker.io", "library/foo", None, f"sha384:{'a' * 96}"),
        id="digest-sha384",
    ),
    pytest.param(
        f"foo@sha512:{'0' * 128}",
        ref("docker.io", "library/foo", None, f"sha512:{'0' * 128}"),
        id="digest-sha512",
    ),
    pytest.param(
        f"foo:1@{SHA_F}", ref("docker.io", "library/foo", "1", SHA_F), id="tag-and-digest"
    ),
    pytest.param(
        f"localhost:5000/foo:1@{SHA_F}",
        ref("localhost:5000", "foo", "1", SHA_F),
        id="domain-tag-digest",
    ),
    # Length and identifiers.
    # SPEC 1: the whole name (domain/path, after normalisation) is at most 255 characters.
    pytest.param("foo/" + "a" * 241, ref("docker.io", "foo/" + "a" * 241), id="name-255"),
    pytest.param(
        "example.com/" + "a" * 243, ref("example.com", "a" * 243), id="domain-counted-in-255"
    ),
    pytest.param(HEX64[:-1], ref("docker.io", "library/" + HEX64[:-1]), id="63-hex-is-a-name"),
    pytest.param(
        f"docker.io/{HEX64}", ref("docker.io", f"library/{HEX64}"), id="64-hex-with-domain"
    ),
    pytest.param(f"{HEX64}:tag", ref("docker.io", f"library/{HEX64}", "tag"), id="64-hex-with-tag"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZED_OK)
def test_parse_normalized_accepts(text: str, expected: ImageReference) -> None:
    assert parse_normalized(text) == expected


NORMALIZED_ERR = [
    pytest.param("", FORMAT, id="empty"),
    pytest.param(HEX64, hex_msg(HEX64), id="64-hex"),
    pytest.param("Foo", lower_msg("library/Foo"), id="uppercase-bare"),
    pytest.param("library/Foo", lower_msg("library/Foo"), id="uppercase-library"),
    pytest.param("foo/Bar:Tag", lower_msg("foo/Bar"), id="uppercase-stops-at-colon"),
    pytest.param(f"Foo@{SHA_F}", lower_msg("library/Foo@sha256"), id="uppercase-slice-includes-at"),
    pytest.param("localhost:5000/Foo", lower_msg("Foo"), id="uppercase-after-domain"),
    pytest.param("Foo_Bar.com/x", UPPER, id="uppercase-caught-by-parse"),
    pytest.param("foo/", FORMAT, id="trailing-slash"),
    pytest.param("/foo", FORMAT, id="leading-slash"),
    pytest.param("foo//bar", FORMAT, id="empty-component"),
    pytest.param("foo/.bar", FORMAT, id="leading-period"),
    pytest.param("foo/bar.", FORMAT, id="trailing-period"),
    pytest.param("foo/a..b", FORMAT, id="double-period"),
    pytest.param("foo/a___b", FORMAT, id="triple-underscore"),
    pytest.param("foo/a-_b", FORMAT, id="dash-underscore"),
    pytest.param("foo/_a", FORMAT, id="leading-underscore"),
    pytest.param("foo/a-", FORMAT, id="trailing-dash"),
    pytest.param("foo:", FORMAT, id="empty-tag"),
    pytest.param("foo:.tag", FORMAT, id="tag-leading-period"),
    pytest.param("foo:-tag", FORMAT, id="tag-leading-dash"),
    pytest.param("foo:" + "t" * 129, FORMAT, id="tag-129"),
    pytest.param("foo:t~g", FORMAT, id="tag-bad-char"),
    pytest.param("foo@", FORMAT, id="empty-digest"),
    pytest.param("foo@sha256:" + "f" * 31, FORMAT, id="digest-under-32-hex"),
    pytest.param("foo@sha256:" + "g" * 64, FORMAT, id="digest-non-hex"),
    pytest.param("foo@256:" + F64, FORMAT, id="digest-algorithm-leading-digit"),
    pytest.param("foo@sha256:" + "f" * 63, DIGEST_LENGTH, id="digest-sha256-63"),
    pytest.param("foo@sha256:" + "f" * 65, DIGEST_LENGTH, id="digest-sha256-65"),
    pytest.param("foo@sha384:" + F64, DIGEST_LENGTH, id="digest-sha384-64"),
    pytest.param("foo@sha512:" + F64, DIGEST_LENGTH, id="digest-sha512-64"),
    pytest.param("foo@sha256:" + "F" * 64, DIGEST_FORMAT, id="digest-uppercase-hex"),
    pytest.param("foo@md5:" + "f" * 32, DIGEST_UNSUPPORTED, id="digest-unknown-algorithm"),
    pytest.param("foo@sha256+b64:" + F64, DIGEST_UNSUPPORTED, id="digest-compound-algorithm"),
    pytest.param("foo@blake3:" + F64, DIGEST_UNSUPPORTED, id="digest-blake3-not-linked"),
    pytest.param("foo/bar:1@SHA256:" + F64, DIGEST_FORMAT, id="digest-uppercase-algorithm"),
    pytest.param(
        "foo/bar@SHA256:" + F64, lower_msg("foo/bar@SHA256"), id="digest-uppercase-algorithm-no-tag"
    ),
    pytest.param("foo/" + "a" * 242, TOO_LONG, id="name-256"),
    pytest.param("example.com/" + "a" * 244, TOO_LONG, id="domain-counts-toward-256"),
    pytest.param("a" * 248, TOO_LONG, id="bare-name-too-long-after-library"),
    pytest.param("[::1]/", FORMAT, id="ipv6-no-path"),
    pytest.param("[::1]:5000", FORMAT, id="ipv6-port-no-path"),
    pytest.param("[fe80::1%eth0]/foo", FORMAT, id="ipv6-zone"),
    pytest.param("[::ffff:1.2.3.4]/foo", FORMAT, id="ipv6-v4-mapped"),
    pytest.param("::1/foo", FORMAT, id="ipv6-unbracketed"),
    # Parse accepts "[abcd]" as a host, but splitDockerDomain needs a "." or ":" to see one.
    pytest.param("[abcd]/foo", FORMAT, id="bracket-host-without-colon"),
    pytest.param("example.com:http/foo", FORMAT, id="named-port"),
    pytest.param("example.com:/foo", FORMAT, id="empty-port"),
    pytest.param("-example.com/foo", FORMAT, id="domain-leading-dash"),
    pytest.param("example-.com/foo", FORMAT, id="domain-trailing-dash"),
    pytest.param("foo bar", FORMAT, id="space"),
    pytest.param("foo\n", FORMAT, id="trailing-newline"),
    pytest.param("foo:tag\n", FORMAT, id="tag-trailing-newline"),
    pytest.param("fo\u00f6", FORMAT, id="non-ascii"),
    pytest.param("https://example.com/foo", FORMAT, id="url"),
]


@pytest.mark.parametrize(("text", "message"), NORMALIZED_ERR)
def test_parse_normalized_refuses(text: str, message: str) -> None:
    with raises_exactly(message):
        parse_normalized(text)


# --------------------------------------------------------------------------------------------
# parse (Parse): translated from reference_test.go TestReferenceParse
# --------------------------------------------------------------------------------------------

PARSE_OK = [
    # (input, domain, name, tag, digest); str(result) must give the input back.
    pytest.param("test_com", "", "test_com", None, None, id="underscore-name"),
    pytest.param("test.com:tag", "", "test.com", "tag", None, id="dotted-name-tag"),
    pytest.param("test.com:5000", "", "test.com", "5000", None, id="port-like-tag"),
    pytest.param("test.com/repo:tag", "test.com", "test.com/repo", "tag", None, id="domain-tag"),
    pytest.param("test:5000/repo", "test:5000", "test:5000/repo", None, None, id="domain-port"),
    pytest.param(
        "test:5000/repo:tag", "test:5000", "test:5000/repo", "tag", None, id="domain-port-tag"
    ),
    pytest.param(
        f"test:5000/repo@{SHA_F}",
        "test:5000",
        "test:5000/repo",
        None,
        SHA_F,
        id="domain-port-digest",
    ),
    pytest.param(
        f"test:5000/repo:tag@{SHA_F}",
        "test:5000",
        "test:5000/repo",
        "tag",
        SHA_F,
        id="domain-port-tag-digest",
    ),
    pytest.param("lowercase:Uppercase", "", "lowercase", "Uppercase", None, id="uppercase-tag"),
    # FIXME upstream: "Uppercase" is taken as a domain-name here and so passes.
    pytest.param(
        "Uppercase/lowercase:tag",
        "Uppercase",
        "Uppercase/lowercase",
        "tag",
        None,
        id="uppercase-domain-fixme",
    ),
    pytest.param(
        "a/" * 127 + "a:tag-puts-this-over-max",
        "a",
        "a/" * 127 + "a",
        "tag-puts-this-over-max",
        None,
        id="255-with-long-tag",
    ),
    pytest.param(
        "sub-dom1.foo.com/bar/baz/quux",
        "sub-dom1.foo.com",
        "sub-dom1.foo.com/bar/baz/quux",
        None,
        None,
        id="subdomain",
    ),
    pytest.param(
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com",
        "sub-dom1.foo.com/bar/baz/quux",
        "some-long-tag",
        None,
        id="subdomain-tag",
    ),
    pytest.param(
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "b.gcr.io/test.example.com/my-app",
        "test.example.com",
        None,
        id="dotted-path-and-tag",
    ),
    pytest.param(
        "xn--n3h.com/myimage:xn--n3h.com",
        "xn--n3h.com",
        "xn--n3h.com/myimage",
        "xn--n3h.com",
        None,
        id="punycode",
    ),
    pytest.param(
        f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA_F}",
        "xn--7o8h.com",
        "xn--7o8h.com/myimage",
        "xn--7o8h.com",
        SHA_F,
        id="punycode-digest",
    ),
    pytest.param(
        "foo_bar.com:8080", "", "foo_bar.com", "8080", None, id="underscore-host-port-is-tag"
    ),
    pytest.param("foo/foo_bar.com:8080", "foo", "foo/foo_bar.com", "8080", None, id="plain-domain"),
    pytest.param("192.168.1.1", "", "192.168.1.1", None, None, id="ipv4-name"),
    pytest.param("192.168.1.1:tag", "", "192.168.1.1", "tag", None, id="ipv4-name-tag"),
    pytest.param("192.168.1.1:5000", "", "192.168.1.1", "5000", None, id="ipv4-name-port-tag"),
    pytest.param(
        "192.168.1.1/repo", "192.168.1.1", "192.168.1.1/repo", None, None, id="ipv4-domain"
    ),
    pytest.param(
        "192.168.1.1:5000/repo",
        "192.168.1.1:5000",
        "192.168.1.1:5000/repo",
        None,
        None,
        id="ipv4-domain-port",
    ),
    pytest.param(
        "192.168.1.1:5000/repo:5050",
        "192.168.1.1:5000",
        "192.168.1.1:5000/repo",
        "5050",
        None,
        id="ipv4-domain-port-tag",
    ),
    pytest.param(
        "[2001:db8::1]/repo", "[2001:db8::1]", "[2001:db8::1]/repo", None, None, id="ipv6"
    ),
    pytest.param(
        "[2001:db8:1:2:3:4:5:6]/repo:tag",
        "[2001:db8:1:2:3:4:5:6]",
        "[2001:db8:1:2:3:4:5:6]/repo",
        "tag",
        None,
        id="ipv6-full-tag",
    ),
    pytest.param(
        "[2001:db8::1]:5000/repo",
        "[2001:db8::1]:5000",
        "[2001:db8::1]:5000/repo",
        None,
        None,
        id="ipv6-port",
    ),
    pytest.param(
        "[2001:db8::1]:5000/repo:tag",
        "[2001:db8::1]:5000",
        "[2001:db8::1]:5000/repo",
        "tag",
        None,
        id="ipv6-port-tag",
    ),
    pytest.param(
        f"[2001:db8::1]:5000/repo@{SHA_F}",
        "[2001:db8::1]:5000",
        "[2001:db8::1]:5000/repo",
        None,
        SHA_F,
        id="ipv6-port-digest",
    ),
    pytest.param(
        f"[2001:db8::1]:5000/repo:tag@{SHA_F}",
        "[2001:db8::1]:5000",
        "[2001:db8::1]:5000/repo",
        "tag",
        SHA_F,
        id="ipv6-port-tag-digest",
    ),
    pytest.param(
        "[2001:db8::]:5000/repo",
        "[2001:db8::]:5000",
        "[2001:db8::]:5000/repo",
        None,
        None,
        id="ipv6-trailing-colons",
    ),
    pytest.param(
        "[::1]:5000/repo", "[::1]:5000", "[::1]:5000/repo", None, None, id="ipv6-loopback"
    ),
    pytest.param(
        "example.com/" + "a" * 243 + ":tag",
        "example.com",
        "example.com/" + "a" * 243,
        "tag",
        None,
        id="name-255-with-domain",
    ),
    # Go registers sha512 only when crypto/sha512 is linked, as it is in the kubelet.
    pytest.param(
        f"validname@sha512:{'f' * 128}",
        "",
        "validname",
        None,
        f"sha512:{'f' * 128}",
        id="sha512-linked",
    ),
]


@pytest.mark.parametrize(("text", "domain", "name", "tag", "digest"), PARSE_OK)
def test_parse_accepts(
    text: str, domain: str, name: str, tag: str | None, digest: str | None
) -> None:
    parsed = parse(text)
    assert str(parsed) == text
    assert (parsed.domain, parsed.name, parsed.tag, parsed.digest) == (domain, name, tag, digest)


PARSE_ERR = [
    pytest.param("", EMPTY, id="empty"),
    pytest.param(":justtag", FORMAT, id="just-tag"),
    pytest.param(f"@{SHA_F}", FORMAT, id="just-digest"),
    pytest.param("repo@sha256:" + "f" * 34, DIGEST_LENGTH, id="short-digest"),
    pytest.param(f"validname@invaliddigest:{F64}", DIGEST_UNSUPPORTED, id="unknown-algorithm"),
    pytest.param("Uppercase:tag", UPPER, id="uppercase-name"),
    pytest.param("test:5000/Uppercase/lowercase:tag", UPPER, id="uppercase-after-domain"),
    pytest.param("domain/" + "a" * 256 + ":tag", TOO_LONG, id="path-256"),
    pytest.param("aa/asdf$$^/aa", FORMAT, id="bad-chars"),
    pytest.param("[2001:db8::1]", FORMAT, id="ipv6-only"),
    pytest.param("[2001:db8::1]:5000", FORMAT, id="ipv6-port-only"),
    pytest.param("[2001:db8::1]:tag", FORMAT, id="ipv6-tag"),
    pytest.param("[fe80::1%eth0]:5000/repo", FORMAT, id="ipv6-zone"),
    pytest.param("[fe80::1%@invalidzone]:5000/repo", FORMAT, id="ipv6-zone-at"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_ERR)
def test_parse_refuses(text: str, message: str) -> None:
    with raises_exactly(message):
        parse(text)


def test_parse_does_not_normalise() -> None:
    assert parse("nginx") == ref("", "nginx")
    assert parse("index.docker.io/nginx") == ref("index.docker.io", "nginx")
    assert parse(HEX64) == ref("", HEX64)
    assert parse("[abcd]/foo") == ref("[abcd]", "foo")


# --------------------------------------------------------------------------------------------
# regexp_test.go, checked through parse
# --------------------------------------------------------------------------------------------

DOMAINS = [
    # (domain, accepted) from TestDomainRegexp, each used as "<domain>/foo".
    ("test.com", True),
    ("test.com:10304", True),
    ("test.com:http", False),
    ("localhost", True),
    ("localhost:8080", True),
    ("a", True),
    ("a.b", True),
    ("ab.cd.com", True),
    ("a-b.com", True),
    ("-ab.com", False),
    ("ab-.com", False),
    ("ab.c-om", True),
    ("ab.-com", False),
    ("ab.com-", False),
    ("0101.com", True),
    ("001a.com", True),
    ("b.gbc.io:443", True),
    ("b.gbc.io", True),
    ("xn--n3h.com", True),
    ("Asdf.com", True),
    ("192.168.1.1:75050", True),
    ("192.168.1.1:750050", True),
    ("[fd00:1:2::3]:75050", True),
    ("[fd00:1:2::3]75050", False),
    ("[fd00:1:2::3]::75050", False),
    ("[fd00:1:2::3%eth0]:75050", False),
    ("[fd00123123123]:75050", True),
    ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:75050", True),
    ("[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:750505", True),
    ("fd00:1:2::3:75050", False),
]


@pytest.mark.parametrize(("domain", "accepted"), [pytest.param(d, a, id=d) for d, a in DOMAINS])
def test_domain_grammar(domain: str, accepted: bool) -> None:
    if accepted:
        assert parse(f"{domain}/foo").domain == domain
    else:
        with raises_exactly(FORMAT):
            parse(f"{domain}/foo")


NAMES = [
    # (name, (domain, path) or error) from TestFullNameRegexp.
    ("", EMPTY),
    ("short", ("", "short")),
    ("simple/name", ("simple", "name")),
    ("library/ubuntu", ("library", "ubuntu")),
    ("docker/stevvooe/app", ("docker", "stevvooe/app")),
    (
        "aa/aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb",
        ("aa", "aa/aa/aa/aa/aa/aa/aa/aa/bb/bb/bb/bb/bb/bb"),
    ),
    ("aa/aa/bb/bb/bb", ("aa", "aa/bb/bb/bb")),
    ("a/a/a/a", ("a", "a/a/a")),
    ("a/a/a/a/", FORMAT),
    ("a//a/a", FORMAT),
    ("a", ("", "a")),
    ("a/aa", ("a", "aa")),
    ("a/aa/a", ("a", "aa/a")),
    ("foo.com", ("", "foo.com")),
    ("foo.com/", FORMAT),
    ("foo.com:8080/bar", ("foo.com:8080", "bar")),
    ("foo.com:http/bar", FORMAT),
    ("foo.com/bar", ("foo.com", "bar")),
    ("foo.com/bar/baz", ("foo.com", "bar/baz")),
    ("localhost:8080/bar", ("localhost:8080", "bar")),
    ("sub-dom1.foo.com/bar/baz/quux", ("sub-dom1.foo.com", "bar/baz/quux")),
    ("blog.foo.com/bar/baz", ("blog.foo.com", "bar/baz")),
    ("a^a", FORMAT),
    ("aa/asdf$$^/aa", FORMAT),
    ("asdf$$^/aa", FORMAT),
    ("aa-a/a", ("aa-a", "a")),
    ("a/" * 127 + "a", ("a", "a/" * 126 + "a")),
    ("a-/a/a/a", FORMAT),
    ("foo.com/a-/a/a", FORMAT),
    ("-foo/bar", FORMAT),
    ("foo/bar-", FORMAT),
    ("foo-/bar", FORMAT),
    ("foo/-bar", FORMAT),
    ("_foo/bar", FORMAT),
    ("foo_bar", ("", "foo_bar")),
    ("foo_bar.com", ("", "foo_bar.com")),
    # With a tag slot, "foo_bar.com:8080" is name + tag; as a bare name it is refused.
    ("foo_bar.com:8080/app", FORMAT),
    ("foo.com/foo_bar", ("foo.com", "foo_bar")),
    ("____/____", FORMAT),
    ("_docker/_docker", FORMAT),
    ("docker_/docker_", FORMAT),
    ("b.gcr.io/test.example.com/my-app", ("b.gcr.io", "test.example.com/my-app")),
    ("xn--n3h.com/myimage", ("xn--n3h.com", "myimage")),
    ("xn--7o8h.com/myimage", ("xn--7o8h.com", "myimage")),
    ("example.com/xn--7o8h.com/myimage", ("example.com", "xn--7o8h.com/myimage")),
    (
        "example.com/some_separator__underscore/myimage",
        ("example.com", "some_separator__underscore/myimage"),
    ),
    ("example.com/__underscore/myimage", FORMAT),
    ("example.com/..dots/myimage", FORMAT),
    ("example.com/.dots/myimage", FORMAT),
    ("example.com/nodouble..dots/myimage", FORMAT),
    ("docker./docker", FORMAT),
    (".docker/docker", FORMAT),
    ("docker-/docker", FORMAT),
    ("-docker/docker", FORMAT),
    ("do..cker/docker", FORMAT),
    ("do__cker:8080/docker", FORMAT),
    ("do__cker/docker", ("", "do__cker/docker")),
    (
        "registry.io/foo/project--id.module--name.ver---sion--name",
        ("registry.io", "foo/project--id.module--name.ver---sion--name"),
    ),
    ("Asdf.com/foo/bar", ("Asdf.com", "foo/bar")),
    ("Foo/FarB", UPPER),
]


@pytest.mark.parametrize(
    ("text", "expected"), [pytest.param(n, e, id=n[:60] or "empty") for n, e in NAMES]
)
def test_name_grammar(text: str, expected: str | tuple[str, str]) -> None:
    if isinstance(expected, str):
        with raises_exactly(expected):
            parse(text)
    else:
        parsed = parse(text)
        assert (parsed.domain, parsed.path, parsed.tag, parsed.digest) == (*expected, None, None)


REFERENCES = [
    # (reference, (name, tag, digest) or error) from TestReferenceRegexp.
    ("registry.com:8080/myapp:tag", ("registry.com:8080/myapp", "tag", None)),
    (f"registry.com:8080/myapp@{SHA_BE}", ("registry.com:8080/myapp", None, SHA_BE)),
    (f"registry.com:8080/myapp:tag2@{SHA_BE}", ("registry.com:8080/myapp", "tag2", SHA_BE)),
    ("registry.com:8080/myapp@sha256:badbadbadbad", FORMAT),
    ("registry.com:8080/myapp:invalid~tag", FORMAT),
    ("bad_hostname.com:8080/myapp:tag", FORMAT),
    (f"localhost:8080@{SHA_BE}", ("localhost", "8080", SHA_BE)),
    (f"localhost:8080/name@{SHA_BE}", ("localhost:8080/name", None, SHA_BE)),
    (f"localhost:http/name@{SHA_BE}", FORMAT),
    (f"localhost@{SHA_BE}", ("localhost", None, SHA_BE)),
    ("registry.com:8080/myapp@bad", FORMAT),
    ("registry.com:8080/myapp@2bad", FORMAT),
]


@pytest.mark.parametrize(
    ("text", "expected"), [pytest.param(r, e, id=r[:60]) for r, e in REFERENCES]
)
def test_reference_grammar(text: str, expected: str | tuple[str, str | None, str | None]) -> None:
    if isinstance(expected, str):
        with raises_exactly(expected):
            parse(text)
    else:
        parsed = parse(text)
        assert (parsed.name, parsed.tag, parsed.digest) == expected


IDENTIFIERS = [
    # (text, is a 64-hex identifier) from TestIdentifierRegexp; identifiers are refused as names.
    ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821", True),
    ("7EC43B381E5AEFE6E04EFB0B3F0693FF2A4A50652D64AEC573905F2DB5889A1C", False),
    ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf", False),
    ("sha256:da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf9821", False),
    ("da304e823d8ca2b9d863a3c897baeb852ba21ea9a9f1414736394ae7fcaf98218482", False),
]


@pytest.mark.parametrize(
    ("text", "identifier"), [pytest.param(t, i, id=t[:20] + str(len(t))) for t, i in IDENTIFIERS]
)
def test_identifier_refused_only_when_exactly_64_lowercase_hex(text: str, identifier: bool) -> None:
    assert (outcome(parse_normalized, text) == hex_msg(text)) == identifier


# --------------------------------------------------------------------------------------------
# normalize_test.go
# --------------------------------------------------------------------------------------------

VALID_REPO_NAMES = [
    # TestValidateReferenceName and TestValidateRemoteName.
    "docker/docker",
    "library/debian",
    "debian",
    "localhost/library/debian",
    "localhost/debian",
    "LOCALDOMAIN/library/debian",
    "LOCALDOMAIN/debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    f"docker.io/{HEX64}",
    "Docker/docker",
    "DOCKER/docker",
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
]


@pytest.mark.parametrize("text", VALID_REPO_NAMES)
def test_valid_repository_names(text: str) -> None:
    parsed = parse_normalized(text)
    assert parse_normalized(str(parsed)) == parsed


INVALID_REPO_NAMES = [
    pytest.param("https://github.com/docker/docker", FORMAT, id="url"),
    pytest.param("docker/Docker", lower_msg("docker/Docker"), id="docker/Docker"),
    pytest.param("-docker", FORMAT, id="-docker"),
    pytest.param("-docker/docker", FORMAT, id="-docker/docker"),
    pytest.param("-docker.io/docker/docker", FORMAT, id="-docker.io/docker/docker"),
    pytest.param("docker///docker", FORMAT, id="docker///docker"),
    pytest.param(
        "docker.io/docker/Docker", lower_msg("docker/Docker"), id="docker.io/docker/Docker"
    ),
    pytest.param("docker.io/docker///docker", FORMAT, id="docker.io/docker///docker"),
    pytest.param("[fc00::1]", FORMAT, id="[fc00::1]"),
    pytest.param("[fc00::1]:5000", FORMAT, id="[fc00::1]:5000"),
    pytest.param("fc00::1:5000/debian", FORMAT, id="fc00::1:5000/debian"),
    pytest.param("[fe80::1%eth0]:5000/debian", FORMAT, id="[fe80::1%eth0]:5000/debian"),
    pytest.param("[2001:db8:3:4::192.0.2.33]:5000/debian", FORMAT, id="ipv6-embedded-ipv4"),
    pytest.param(HEX64, hex_msg(HEX64), id="64-hex"),
    pytest.param("docker-/docker", FORMAT, id="docker-/docker"),
    pytest.param("-docker-/docker", FORMAT, id="-docker-/docker"),
    pytest.param("____/____", FORMAT, id="____/____"),
    pytest.param("_docker/_docker", FORMAT, id="_docker/_docker"),
    pytest.param("dock..er/docker", FORMAT, id="dock..er/docker"),
    pytest.param("dock_.er/docker", FORMAT, id="dock_.er/docker"),
    pytest.param("dock-.er/docker", FORMAT, id="dock-.er/docker"),
    pytest.param("docker/", FORMAT, id="docker/"),
    pytest.param(f"{LONG_NAMESPACE}/docker", TOO_LONG, id="namespace-too-long"),
    pytest.param("-foo", FORMAT, id="-foo"),
]


@pytest.mark.parametrize(("text", "message"), INVALID_REPO_NAMES)
def test_invalid_repository_names(text: str, message: str) -> None:
    with raises_exactly(message):
        parse_normalized(text)


REPOSITORY_INFO = [
    # (domain, path, familiar, full, ambiguous) from TestParseRepositoryInfo.
    ("localhost", "fooo", "localhost/fooo", "localhost/fooo", "localhost/fooo"),
    ("localhost", "fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar", "localhost/fooo/bar"),
    ("LOCALDOMAIN", "fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo", "LOCALDOMAIN/fooo"),
    (
        "LOCALDOMAIN",
        "fooo/bar",
        "LOCALDOMAIN/fooo/bar",
        "LOCALDOMAIN/fooo/bar",
        "LOCALDOMAIN/fooo/bar",
    ),
    ("docker.io", "fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar"),
    ("docker.io", "library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu"),
    ("docker.io", "nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", None),
    ("docker.io", "other/library", "other/library", "docker.io/other/library", None),
    (
        "127.0.0.1:8000",
        "private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        None,
    ),
    (
        "127.0.0.1:8000",
        "privatebase",
        "127.0.0.1:8000/privatebase",
        "127.0.0.1:8000/privatebase",
        None,
    ),
    (
        "example.com",
        "private/moonbase",
        "example.com/private/moonbase",
        "example.com/private/moonbase",
        None,
    ),
    ("example.com", "privatebase", "example.com/privatebase", "example.com/privatebase", None),
    (
        "example.com:8000",
        "private/moonbase",
        "example.com:8000/private/moonbase",
        "example.com:8000/private/moonbase",
        None,
    ),
    (
        "example.com:8000",
        "privatebasee",
        "example.com:8000/privatebasee",
        "example.com:8000/privatebasee",
        None,
    ),
    (
        "docker.io",
        "library/ubuntu-12.04-base",
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "index.docker.io/library/ubuntu-12.04-base",
    ),
    ("docker.io", "library/foo", "foo", "docker.io/library/foo", "docker.io/foo"),
    ("docker.io", "library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", None),
    ("docker.io", "store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", None),
    ("Foo", "bar", "Foo/bar", "Foo/bar", None),
    ("FOO", "bar", "FOO/bar", "FOO/bar", None),
]


@pytest.mark.parametrize(
    ("text", "domain", "path", "familiar", "full"),
    [
        pytest.param(text, domain, path, familiar, full, id=text)
        for domain, path, familiar, full, ambiguous in REPOSITORY_INFO
        for text in dict.fromkeys([familiar, full, ambiguous])
        if text is not None
    ],
)
def test_repository_info(text: str, domain: str, path: str, familiar: str, full: str) -> None:
    parsed = parse_normalized(text)
    assert (parsed.domain, parsed.path) == (domain, path)
    assert parsed.familiar_name == familiar
    assert str(parsed) == full
    assert parsed.name == full


def test_tag_and_digest_familiar_string() -> None:
    short = f"busybox:latest@{SHA_86}"
    parsed = parse_normalized(short)
    assert str(parsed) == f"docker.io/library/{short}"
    assert (parsed.tag, parsed.digest) == ("latest", SHA_86)
    assert familiar_string(parsed) == short


EQUIVALENTS = [
    # Named cases of TestParseAnyReference: (reference, fully qualified string).
    ("redis", "docker.io/library/redis"),
    ("redis:latest", "docker.io/library/redis:latest"),
    ("docker.io/library/redis:latest", "docker.io/library/redis:latest"),
    (f"redis@{SHA_DBCC}", f"docker.io/library/redis@{SHA_DBCC}"),
    (f"docker.io/library/redis@{SHA_DBCC}", f"docker.io/library/redis@{SHA_DBCC}"),
    ("dmcgowan/myapp", "docker.io/dmcgowan/myapp"),
    ("dmcgowan/myapp:latest", "docker.io/dmcgowan/myapp:latest"),
    ("docker.io/mcgowan/myapp:latest", "docker.io/mcgowan/myapp:latest"),
    (f"dmcgowan/myapp@{SHA_DBCC}", f"docker.io/dmcgowan/myapp@{SHA_DBCC}"),
    (f"docker.io/dmcgowan/myapp@{SHA_DBCC}", f"docker.io/dmcgowan/myapp@{SHA_DBCC}"),
    (SHA_DBCC[7:-1], f"docker.io/library/{SHA_DBCC[7:-1]}"),
    ("dbcc1", "docker.io/library/dbcc1"),
]


@pytest.mark.parametrize(
    ("text", "equivalent"), [pytest.param(t, e, id=t[:50]) for t, e in EQUIVALENTS]
)
def test_equivalent_references(text: str, equivalent: str) -> None:
    parsed = parse_normalized(text)
    assert str(parsed) == equivalent
    assert parse(equivalent) == parsed


SPLITS = [
    # TestNormalizedSplitHostname: (input, domain, path).
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "docker.io", "test_com/foo"),
    ("docker/migrator", "docker.io", "docker/migrator"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("foo", "docker.io", "library/foo"),
    ("xn--n3h.com/foo", "xn--n3h.com", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
    ("docker.io/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo", "docker.io", "library/foo"),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar"),
]


@pytest.mark.parametrize(("text", "domain", "path"), [pytest.param(*s, id=s[0]) for s in SPLITS])
def test_normalized_split(text: str, domain: str, path: str) -> None:
    parsed = parse_normalized(text)
    assert (parsed.domain, parsed.path) == (domain, path)


WITH_NAME_SPLITS = [
    # TestDomainAndPath: Parse keeps what is written, so "test_com" stays in the path.
    ("test.com/foo", "test.com", "foo"),
    ("test_com/foo", "", "test_com/foo"),
    ("test:8080/foo", "test:8080", "foo"),
    ("test.com:8080/foo", "test.com:8080", "foo"),
    ("test-com:8080/foo", "test-com:8080", "foo"),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"),
]


@pytest.mark.parametrize(
    ("text", "domain", "path"), [pytest.param(*s, id=s[0]) for s in WITH_NAME_SPLITS]
)
def test_parse_split(text: str, domain: str, path: str) -> None:
    parsed = parse(text)
    assert (parsed.domain, parsed.path) == (domain, path)


PULL_REFS = [
    # TestParseDockerRef: its output is our pull_ref (digest wins over tag, else tag or latest).
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:latest", "docker.io/library/busybox:latest"),
    (f"busybox@{SHA_E6}", f"docker.io/library/busybox@{SHA_E6}"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox:latest", "docker.io/library/busybox:latest"),
    ("library/busybox:latest", "docker.io/library/busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io/library/busybox:latest"),
    ("gcr.io/library/busybox", "gcr.io/library/busybox:latest"),
    (f"gcr.io/library/busybox:latest@{SHA_E6}", f"gcr.io/library/busybox@{SHA_E6}"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("[::1]:5000/foo", "[::1]:5000/foo:latest"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [pytest.param(t, e, id=t[:50]) for t, e in PULL_REFS]
)
def test_pull_ref(text: str, expected: str) -> None:
    pull_ref = parse_normalized(text).pull_ref
    assert pull_ref == expected
    assert str(parse(pull_ref)) == pull_ref


CANONICAL = [
    # TestParseNamed: a string is canonical when normalising it changes nothing.
    ("test.com/foo", True),
    ("test:8080/foo", True),
    ("test_com/foo", False),
    ("test.com", False),
    ("foo", False),
    ("library/foo", False),
    ("docker.io/library/foo", True),
    ("docker.io/foo", False),
]


@pytest.mark.parametrize(("text", "canonical"), [pytest.param(t, c, id=t) for t, c in CANONICAL])
def test_canonical_names(text: str, canonical: bool) -> None:
    assert (str(parse_normalized(text)) == text) == canonical


# --------------------------------------------------------------------------------------------
# ImageReference helpers
# --------------------------------------------------------------------------------------------

HOSTS = [
    # (reference, hostname, port)
    ("nginx", "docker.io", None),
    ("localhost:5000/foo", "localhost", 5000),
    ("localhost/foo", "localhost", None),
    ("[::1]:5000/foo", "::1", 5000),
    ("[2001:db8::1]/foo", "2001:db8::1", None),
    ("registry.k8s.io:443/pause", "registry.k8s.io", 443),
    ("127.0.0.1:05000/foo", "127.0.0.1", 5000),
    ("example.com:750050/foo", "example.com", 750050),
    ("foo_bar.com/baz", "", None),
]


@pytest.mark.parametrize(("text", "hostname", "port"), [pytest.param(*h, id=h[0]) for h in HOSTS])
def test_hostname_and_port(text: str, hostname: str, port: int | None) -> None:
    parsed = parse_normalized(text)
    assert (parsed.hostname, parsed.port) == (hostname, port)


FAMILIAR = [
    # (reference, familiar_name, familiar_string)
    ("docker.io/library/nginx", "nginx", "nginx"),
    ("nginx:1.25", "nginx", "nginx:1.25"),
    ("docker.io/foo/bar", "foo/bar", "foo/bar"),
    ("library/foo/bar:1", "library/foo/bar", "library/foo/bar:1"),
    ("index.docker.io/library/nginx", "nginx", "nginx"),
    (f"nginx@{SHA_F}", "nginx", f"nginx@{SHA_F}"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause", "registry.k8s.io/pause:3.9"),
    ("localhost:5000/library/foo", "localhost:5000/library/foo", "localhost:5000/library/foo"),
    ("foo_bar.com/baz", "foo_bar.com/baz", "foo_bar.com/baz"),
]


@pytest.mark.parametrize(
    ("text", "name", "string"), [pytest.param(*f, id=f[0][:50]) for f in FAMILIAR]
)
def test_familiar(text: str, name: str, string: str) -> None:
    parsed = parse_normalized(text)
    assert parsed.familiar_name == name
    assert familiar_string(parsed) == string


def test_familiar_of_unnormalised_reference() -> None:
    assert familiar_string(parse("foo:1")) == "foo:1"
    assert familiar_string(parse("docker.io/library/foo:1")) == "foo:1"


LATEST = [
    # (reference, implied_latest, with_default_tag as a string)
    ("nginx", True, "docker.io/library/nginx:latest"),
    ("nginx:latest", True, "docker.io/library/nginx:latest"),
    ("nginx:1.25", False, "docker.io/library/nginx:1.25"),
    ("nginx:Latest", False, "docker.io/library/nginx:Latest"),
    (f"nginx@{SHA_F}", False, f"docker.io/library/nginx@{SHA_F}"),
    (f"nginx:latest@{SHA_F}", True, f"docker.io/library/nginx:latest@{SHA_F}"),
    (f"nginx:1@{SHA_F}", False, f"docker.io/library/nginx:1@{SHA_F}"),
]


@pytest.mark.parametrize(
    ("text", "implied", "defaulted"), [pytest.param(*c, id=c[0][:30]) for c in LATEST]
)
def test_latest_and_default_tag(text: str, implied: bool, defaulted: str) -> None:
    parsed = parse_normalized(text)
    assert parsed.implied_latest is implied
    with_tag = parsed.with_default_tag()
    assert str(with_tag) == defaulted
    assert with_tag.with_default_tag() == with_tag
    if parsed.tag is not None or parsed.digest is not None:
        assert with_tag is parsed


def test_constants_and_value_semantics() -> None:
    assert (DEFAULT_DOMAIN, DEFAULT_TAG) == ("docker.io", "latest")
    parsed = parse_normalized("nginx")
    assert parsed == ImageReference("docker.io", "library/nginx", None, None)
    assert hash(parsed) == hash(parse_normalized("docker.io/library/nginx"))
    with pytest.raises(AttributeError):
        parsed.tag = "x"  # type: ignore[misc]


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="invalid reference format"):
        parse_normalized("UPPER CASE")


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

LOWER_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
alnum = st.text(LOWER_ALNUM, min_size=1, max_size=6)
separator = st.sampled_from([".", "_", "__", "-", "--", "---"])
path_component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    alnum,
    st.lists(st.tuples(separator, alnum), max_size=3),
)
paths = st.lists(path_component, min_size=1, max_size=4).map("/".join)
domain_component = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,6}[a-zA-Z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.lists(domain_component, min_size=1, max_size=4).map(".".join),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))),
    # Only a ":" inside the brackets makes splitDockerDomain take them for a host.
    st.from_regex(r"\[[a-fA-F0-9:]{0,19}:[a-fA-F0-9:]{0,19}\]", fullmatch=True),
    st.sampled_from(["localhost", "index.docker.io", "docker.io", "registry.k8s.io"]),
)
domains = st.builds(
    lambda host, port: host if port is None else f"{host}:{port}",
    hosts,
    st.none() | st.integers(0, 999999),
)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True) | st.just("t" * 128)
digests = st.sampled_from([("sha256", 64), ("sha384", 96), ("sha512", 128)]).flatmap(
    lambda alg: st.text("0123456789abcdef", min_size=alg[1], max_size=alg[1]).map(
        lambda hex_: f"{alg[0]}:{hex_}"
    )
)
valid_references = st.builds(
    lambda domain, path, tag, digest: (
        (f"{domain}/{path}" if domain else path)
        + (f":{tag}" if tag else "")
        + (f"@{digest}" if digest else "")
    ),
    st.none() | domains,
    paths,
    st.none() | tags,
    st.none() | digests,
)

GRAMMAR_ALPHABET = "abcAZ019._-/:@[]%+~ \n\u0130sha256f"
near_valid = st.one_of(
    st.text(GRAMMAR_ALPHABET, max_size=60),
    st.builds(
        lambda text, index, char: text[:index] + char + text[index + 1 :],
        valid_references,
        st.integers(0, 80),
        st.sampled_from(GRAMMAR_ALPHABET),
    ),
    st.builds(
        lambda text, index: text[:index] + text[index + 1 :], valid_references, st.integers(0, 80)
    ),
)

ERROR_PATTERNS = re.compile(
    "|".join(
        [
            *(
                re.escape(m)
                for m in (
                    FORMAT,
                    UPPER,
                    EMPTY,
                    TOO_LONG,
                    DIGEST_FORMAT,
                    DIGEST_LENGTH,
                    DIGEST_UNSUPPORTED,
                )
            ),
            r"invalid reference format: repository name \(.*\) must be lowercase",
            r"invalid repository name \([a-f0-9]{64}\), cannot specify 64-byte hexadecimal strings",
        ]
    ),
    re.DOTALL,
)

quick = settings(max_examples=150, database=None, deadline=None)


@quick
@given(valid_references)
def test_round_trip(text: str) -> None:
    parsed = parse_normalized(text)
    assert parse_normalized(str(parsed)) == parsed
    assert parse(str(parsed)) == parsed
    assert parse_normalized(parsed.pull_ref).pull_ref == parsed.pull_ref


@quick
@given(st.text(max_size=80) | near_valid)
def test_total_on_arbitrary_text(text: str) -> None:
    # Anything other than InvalidReferenceError escapes outcome() and fails the test.
    normalized = outcome(parse_normalized, text)
    if isinstance(normalized, str):
        assert ERROR_PATTERNS.fullmatch(normalized), normalized
    else:
        assert parse_normalized(str(normalized)) == normalized
    plain = outcome(parse, text)
    if isinstance(plain, str):
        assert ERROR_PATTERNS.fullmatch(plain), plain
    else:
        assert str(plain) == text
