"""Tests for kubesim_images.keyring: which docker-config credentials the kubelet tries for an image.

The tables translate the kubelet's own tests of ``pkg/credentialprovider`` (keyring_test.go:
``TestUrlsMatch``, ``TestDockerKeyringForGlob``, ``TestKeyringMiss``, the Docker Hub cases,
``TestIsDefaultRegistryMatch``, ``TestDockerKeyringLookup``, ``TestIssue3797``; config_test.go:
the ``DockerConfigEntry`` and ``auth`` decoding cases). Go looks images up by the normalised
repository name (``docker.io/library/nginx``), which is what ``Keyring.lookup`` receives here
through ``parse_normalized``. Go cases whose lookup string is not a valid image reference (a
``:1111`` inside the path) are checked through ``urls_match`` instead.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubesim_images.errors import ConfigError
from kubesim_images.keyring import (
    Keyring,
    UnionKeyring,
    _is_default_registry_match,
    load_docker_config,
    parse_docker_config,
    urls_match,
)
from kubesim_images.reference import parse_normalized
from kubesim_images.registry.base import Credential

FOO_BAR = base64.b64encode(b"foo:bar").decode()  # "Zm9vOmJhcg=="
SECRET = "s3cr3t-Pa55w0rd"  # a fake secret that must never be shown


def _entry(username: str, password: str = "pw") -> dict[str, str]:
    return {"username": username, "password": password, "email": f"{username}@example.com"}


def _keyring(auths: dict[str, Any], *, source: str = "node") -> Keyring:
    return Keyring(parse_docker_config({"auths": auths}, source=source))


def _lookup(keyring: Keyring | UnionKeyring, image: str) -> list[Credential]:
    return keyring.lookup(parse_normalized(image))


def _users(keyring: Keyring | UnionKeyring, image: str) -> list[str]:
    return [c.username for c in _lookup(keyring, image)]


# --- URLsMatchStr: host globs, ports, path prefixes -----------------------------------------


@pytest.mark.parametrize(
    ("glob", "target", "expected"),
    [
        # TestUrlsMatch: match when there is no path component
        ("*.kubernetes.io", "prefix.kubernetes.io", True),
        ("prefix.*.io", "prefix.kubernetes.io", True),
        ("prefix.kubernetes.*", "prefix.kubernetes.io", True),
        ("*-good.kubernetes.io", "prefix-good.kubernetes.io", True),
        # match with path components
        ("*.kubernetes.io/blah", "prefix.kubernetes.io/blah", True),
        ("prefix.*.io/foo", "prefix.kubernetes.io/foo/bar", True),
        # match with path components and ports
        ("*.kubernetes.io:1111/blah", "prefix.kubernetes.io:1111/blah", True),
        ("prefix.*.io:1111/foo", "prefix.kubernetes.io:1111/foo/bar", True),
        # no match when number of parts mismatch
        ("*.kubernetes.io", "kubernetes.io", False),
        ("*.*.kubernetes.io", "prefix.kubernetes.io", False),
        ("*.*.kubernetes.io", "kubernetes.io", False),
        # no match when some parts mismatch
        ("kubernetes.io", "kubernetes.com", False),
        ("k*.io", "quay.io", False),
        # no match when ports mismatch
        ("*.kubernetes.io:1234/blah", "prefix.kubernetes.io:1111/blah", False),
        ("prefix.*.io/foo", "prefix.kubernetes.io:1111/foo/bar", False),
        # TestDockerKeyringForGlob / TestKeyringMiss cases with ":1111" inside the path
        ("*.docker.io/path:1111", "prefix.docker.io/path:1111/foo/bar", True),
        ("prefix.docker.*/path:1111", "prefix.docker.io/path:1111/foo/bar", True),
        ("prefix.*.io/path:1111", "prefix.docker.io/path/subpath:1111/foo/bar", False),
    ],
)
def test_urls_match_translates_kubelet_table(glob: str, target: str, expected: bool) -> None:
    assert urls_match(glob, target) is expected


@pytest.mark.parametrize(
    ("glob", "target", "expected"),
    [
        ("*.*.io", "a.b.io", True),
        ("*.*.io", "a.io", False),
        ("*.io", "a.b.io", False),  # a star never spans a dot
        ("*.docker.io", "docker.io", False),
        ("reg[0-9].example.com", "reg7.example.com", True),
        ("reg[0-9].example.com", "regx.example.com", False),
        # as in Go's url.Parse, "?" starts a query: the host of "reg?.example.com" is "reg"
        ("reg?.example.com", "reg1.example.com", False),
        ("reg?.example.com", "reg/app", True),
        # ports must agree, including "no port" against a port
        ("example.com:5000", "example.com:5000/app", True),
        ("example.com:5000", "example.com:5001/app", False),
        ("example.com", "example.com:5000/app", False),
        ("example.com:5000", "example.com/app", False),
        # the key's path is a plain string prefix of the image path
        ("example.com/team", "example.com/team/app", True),
        ("example.com/team", "example.com/teams/app", True),
        ("example.com/team", "example.com/other/app", False),
        ("example.com/team/app", "example.com/team", False),
        # IPv6: net.SplitHostPort strips the brackets when there is a port
        ("[::1]:5000", "[::1]:5000/app", True),
        ("[::1]:5000", "[::1]:5001/app", False),
    ],
)
def test_urls_match_globs_ports_and_paths(glob: str, target: str, expected: bool) -> None:
    assert urls_match(glob, target) is expected


# --- BasicDockerKeyring.Add + Lookup: hits and misses -----------------------------------------


@pytest.mark.parametrize(
    ("key", "image"),
    [
        # TestDockerKeyringForGlob, looked up as "<target>/foo/bar"
        ("https://hello.kubernetes.io", "hello.kubernetes.io/foo/bar"),
        ("https://*.docker.io", "prefix.docker.io/foo/bar"),
        ("https://prefix.*.io", "prefix.docker.io/foo/bar"),
        ("https://prefix.docker.*", "prefix.docker.io/foo/bar"),
        ("https://*.docker.io/path", "prefix.docker.io/path/foo/bar"),
        ("https://prefix.*.io/path", "prefix.docker.io/path/subpath/foo/bar"),
        ("https://prefix.docker.*/path", "prefix.docker.io/path/foo/bar"),
        ("https://*.docker.io:8888", "prefix.docker.io:8888/foo/bar"),
        ("https://prefix.*.io:8888", "prefix.docker.io:8888/foo/bar"),
        ("https://prefix.docker.*:8888", "prefix.docker.io:8888/foo/bar"),
        # "/v1/" and "/v2/" mean the bare host (Go's target had a ":1111" path; any path hits)
        ("https://*.docker.io/v1/", "prefix.docker.io/path/foo/bar"),
        ("https://*.docker.io/v2/", "prefix.docker.io/path/foo/bar"),
        ("prefix.docker.io:1111", "prefix.docker.io:1111/path/foo/bar"),
        ("*.docker.io:1111", "prefix.docker.io:1111/path/foo/bar"),
        # a scheme-less key, an http:// key, a trailing slash, an IPv6 registry
        ("registry.example.com", "registry.example.com/app"),
        ("http://registry.example.com", "registry.example.com/app"),
        ("https://registry.example.com/", "registry.example.com/app"),
        ("[::1]:5000", "[::1]:5000/app"),
    ],
)
def test_lookup_hits(key: str, image: str) -> None:
    keyring = _keyring({key: {"email": "foo@bar.baz", "auth": FOO_BAR}})
    [credential] = _lookup(keyring, image)
    assert (credential.username, credential.password) == ("foo", "bar")
    assert credential.match == key


@pytest.mark.parametrize(
    ("key", "image"),
    [
        # TestKeyringMiss, looked up as "<target>/foo/bar"
        ("https://hello.kubernetes.io", "world.mesos.org/foo/bar"),
        ("https://*.docker.com", "prefix.docker.io/foo/bar"),
        ("https://suffix.*.io", "prefix.docker.io/foo/bar"),
        ("https://prefix.docker.c*", "prefix.docker.io/foo/bar"),
        ("suffix.*.io", "prefix.docker.io/foo/bar"),
        # ports and paths
        ("registry.example.com:5000", "registry.example.com/app"),
        ("registry.example.com", "registry.example.com:5000/app"),
        ("https://registry.example.com/team", "registry.example.com/other/app"),
        ("https://registry.example.com/v1/team", "registry.example.com/other/app"),
    ],
)
def test_lookup_misses(key: str, image: str) -> None:
    assert _lookup(_keyring({key: {"auth": FOO_BAR}}), image) == []


def test_bracketed_host_that_is_no_ip_address_is_looked_up_without_error() -> None:
    # "[abc]:5000/app" is a valid reference; Go's url.Parse accepts it, so must the lookup.
    keyring = _keyring({"quay.io": _entry("quay"), "*:5000": _entry("any-5000")})
    assert _users(keyring, "[abc]:5000/app") == ["any-5000"]
    assert _users(keyring, "[abc]:5001/app") == []


def test_entry_the_url_parser_refuses_is_skipped() -> None:
    keyring = _keyring({"https://[::1": _entry("broken"), "quay.io": _entry("quay")})
    assert _users(keyring, "quay.io/app") == ["quay"]


# --- more specific paths first (reverse lexical order of keys) ------------------------------


@pytest.mark.parametrize(
    ("image", "users"),
    [
        # TestDockerKeyringLookup: grace has bar.example.com/pong, ada has bar.example.com
        ("bar.example.com/app", ["ada"]),
        ("bar.example.com/pong", ["grace", "ada"]),  # deeper match first
        ("bar.example.com/ping", ["ada"]),  # no direct match, deeper path ignored
        ("bar.example.com/pongz", ["grace", "ada"]),  # a key path matches a name prefix
        ("bar.example.com/pong/pang", ["grace", "ada"]),  # regardless of sub-path
        ("example.com/pong", []),  # no host match
        ("foo.example.com/pong", []),
    ],
)
def test_more_specific_path_is_tried_first(image: str, users: list[str]) -> None:
    keyring = _keyring({"bar.example.com/pong": _entry("grace"), "bar.example.com": _entry("ada")})
    assert _users(keyring, image) == users


def test_order_is_reverse_lexical_whatever_the_file_order() -> None:
    keys = {
        "*.example.com": "glob",
        "registry.example.com": "host",
        "registry.example.com/team": "team",
        "registry.example.com/team/app": "app",
    }
    forward = _keyring({key: _entry(user) for key, user in keys.items()})
    backward = _keyring({key: _entry(user) for key, user in reversed(keys.items())})
    expected = ["app", "team", "host", "glob"]
    assert _users(forward, "registry.example.com/team/app") == expected
    assert _users(backward, "registry.example.com/team/app") == expected


@pytest.mark.parametrize("image", ["quay.io/foo", "quay.io/foo/bar"])
def test_key_with_scheme_and_v1_path_matches_the_host(image: str) -> None:
    # TestIssue3797
    keyring = _keyring({"https://quay.io/v1/": _entry("rex", "tiny arms")})
    [credential] = _lookup(keyring, image)
    assert (credential.username, credential.password) == ("rex", "tiny arms")


@pytest.mark.parametrize(
    "key", ["quay.io", "https://quay.io", "http://quay.io", "quay.io/v1/", "https://quay.io/v2/"]
)
def test_every_spelling_of_a_bare_host_is_the_same_key(key: str) -> None:
    assert _users(_keyring({key: _entry("u")}), "quay.io/org/app") == ["u"]


# --- several credentials per key -------------------------------------------------------------


def test_keys_normalising_alike_keep_every_credential_in_file_order() -> None:
    keyring = _keyring(
        {
            "https://quay.io": _entry("first"),
            "quay.io/v1/": _entry("second"),
            "http://quay.io/": _entry("third"),
        }
    )
    assert _users(keyring, "quay.io/org/app") == ["first", "second", "third"]


def test_add_appends_to_an_existing_key() -> None:
    keyring = Keyring()
    keyring.add("https://quay.io", Credential("a", "1"))
    keyring.add("quay.io", Credential("b", "2"))
    assert [c.username for c in _lookup(keyring, "quay.io/app")] == ["a", "b"]


def test_http_and_https_keys_both_apply() -> None:
    # TestDockerKeyringFromConfig: the scheme is dropped, http:// and https:// alike
    keyring = _keyring(
        {"http://foo.example.com": _entry("foo"), "https://bar.example.com": _entry("bar")}
    )
    assert _users(keyring, "foo.example.com/app") == ["foo"]
    assert _users(keyring, "bar.example.com/app") == ["bar"]


# --- Docker Hub: index.docker.io credentials as the fallback ---------------------------------


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # TestIsDefaultRegistryMatch
        ("foo/bar", True),
        ("docker.io/foo/bar", True),
        ("index.docker.io/foo/bar", True),
        ("foo", True),
        ("", False),
        ("registry.tld/foo/bar", False),
        ("registry:5000/foo/bar", False),
        ("myhostdocker.io/foo/bar", False),
        # Go only looks for "." or ":" in the first component, so "localhost" counts as Hub
        ("localhost/foo", True),
        ("localhost:5000/foo", False),
    ],
)
def test_is_default_registry_match(image: str, expected: bool) -> None:
    assert _is_default_registry_match(image) is expected


@pytest.mark.parametrize(
    "image",
    [
        "google/docker-registry",  # TestKeyringHitWithUnqualifiedDockerHub
        "jenkins",  # TestKeyringHitWithUnqualifiedLibraryDockerHub
        "index.docker.io/google/docker-registry",  # TestKeyringHitWithQualifiedDockerHub
        "docker.io/library/nginx:1.27",
        "nginx@sha256:" + "a" * 64,
        "localhost/foo",
    ],
)
def test_docker_hub_credentials_serve_hub_images(image: str) -> None:
    keyring = _keyring({"https://index.docker.io/v1/": {"auth": FOO_BAR}})
    [credential] = _lookup(keyring, image)
    assert (credential.username, credential.password) == ("foo", "bar")
    assert credential.match == "https://index.docker.io/v1/"


@pytest.mark.parametrize(
    "image",
    [
        "world.mesos.org/foo/bar",  # TestKeyringMissWithDockerHubCredentials
        "registry.tld/foo/bar",
        "registry:5000/foo/bar",
        "localhost:5000/foo",
        "myhostdocker.io/foo/bar",
    ],
)
def test_docker_hub_credentials_do_not_leak_to_other_registries(image: str) -> None:
    keyring = _keyring({"https://index.docker.io/v1/": {"auth": FOO_BAR}})
    assert _lookup(keyring, image) == []


@pytest.mark.parametrize(
    "key",
    [
        "index.docker.io",
        "https://index.docker.io/v1/",
        "https://index.docker.io/v2/",
        "http://index.docker.io/",
    ],
)
def test_every_spelling_of_the_hub_key_is_the_fallback(key: str) -> None:
    assert _users(_keyring({key: _entry("hub")}), "nginx") == ["hub"]


def test_a_hub_key_with_a_path_is_not_the_fallback() -> None:
    assert _users(_keyring({"https://index.docker.io/v1/team": _entry("hub")}), "nginx") == []


def test_hub_fallback_only_when_nothing_else_matched() -> None:
    keyring = _keyring(
        {"https://index.docker.io/v1/": _entry("hub"), "docker.io/library": _entry("lib")}
    )
    assert _users(keyring, "nginx") == ["lib"]
    assert _users(keyring, "someone/app") == ["hub"]


def test_docker_io_key_matches_the_normalised_name_directly() -> None:
    keyring = _keyring({"docker.io": _entry("dio")})
    assert _users(keyring, "nginx") == ["dio"]
    assert _users(keyring, "index.docker.io/someone/app") == ["dio"]


# --- UnionDockerKeyring: pod secrets first, then the node -----------------------------------


def test_union_lists_pod_secrets_before_the_node() -> None:
    pod = _keyring({"registry.example.com": _entry("pod")}, source="secret/pull")
    node = _keyring({"registry.example.com/team": _entry("node")}, source="/var/lib/kubelet")
    union = UnionKeyring(pod, node)
    # each keyring orders its own keys; the union only concatenates
    assert _users(union, "registry.example.com/team/app") == ["pod", "node"]
    assert [c.source for c in _lookup(union, "registry.example.com/team/app")] == [
        "secret/pull",
        "/var/lib/kubelet",
    ]


def test_union_applies_the_hub_fallback_per_keyring() -> None:
    pod = _keyring({"docker.io": _entry("pod-dio")})
    node = _keyring({"https://index.docker.io/v1/": _entry("node-hub")})
    assert _users(UnionKeyring(pod, node), "nginx") == ["pod-dio", "node-hub"]
    assert _users(UnionKeyring(Keyring(), node), "nginx") == ["node-hub"]


def test_union_skips_keyrings_without_a_match() -> None:
    pod = _keyring({"quay.io": _entry("pod")})
    node = _keyring({"ghcr.io": _entry("node")})
    assert _users(UnionKeyring(pod, node), "ghcr.io/org/app") == ["node"]
    assert _users(UnionKeyring(pod, node), "registry.k8s.io/pause") == []
    assert _users(UnionKeyring(), "nginx") == []


def test_pull_secrets_share_one_keyring_ordered_by_key() -> None:
    # MakeDockerKeyring adds every pod secret to one BasicDockerKeyring.
    entries = parse_docker_config(
        {"auths": {"registry.example.com": _entry("a")}}, source="secret/a"
    ) + parse_docker_config(
        {"auths": {"registry.example.com/team": _entry("b")}}, source="secret/b"
    )
    assert _users(Keyring(entries), "registry.example.com/team/app") == ["b", "a"]


# --- config.json "auths" and the old .dockercfg ----------------------------------------------


def test_config_json_auths() -> None:
    # TestDockerConfigJsonJSONDecode
    document = {
        "auths": {
            "http://foo.example.com": _entry("foo", "bar"),
            "http://bar.example.com": _entry("bar", "baz"),
        },
        "HttpHeaders": {"User-Agent": "Docker-Client"},
    }
    entries = parse_docker_config(document, source="config.json")
    assert [(key, c.username, c.password) for key, c in entries] == [
        ("http://foo.example.com", "foo", "bar"),
        ("http://bar.example.com", "bar", "baz"),
    ]
    assert {c.source for _, c in entries} == {"config.json"}
    assert [c.match for _, c in entries] == ["http://foo.example.com", "http://bar.example.com"]


def test_legacy_dockercfg_has_the_entries_at_top_level() -> None:
    # TestDockerConfigJSONDecode
    document = {
        "http://foo.example.com": _entry("foo", "bar"),
        "http://bar.example.com": _entry("bar", "baz"),
    }
    entries = parse_docker_config(document, source=".dockercfg")
    assert [(key, c.username, c.password) for key, c in entries] == [
        ("http://foo.example.com", "foo", "bar"),
        ("http://bar.example.com", "bar", "baz"),
    ]


@pytest.mark.parametrize("document", [{}, {"auths": {}}])
def test_empty_config_has_no_credentials(document: dict[str, Any]) -> None:
    assert parse_docker_config(document, source="x") == []


def test_load_docker_config_reads_a_file(tmp_path: Path) -> None:
    # TestReadDockerConfigFile: "Zm9vOmJhcgo=" is "foo:bar\n"
    path = tmp_path / "config.json"
    path.write_text(
        '{ "auths": { "http://foo.example.com":{"auth":"Zm9vOmJhcgo=","email":"foo@example.com"}}}',
        encoding="utf-8",
    )
    [(key, credential)] = load_docker_config(path)
    assert key == "http://foo.example.com"
    assert (credential.username, credential.password) == ("foo", "bar\n")
    assert credential.source == str(path)


def test_load_docker_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read docker config") as info:
        load_docker_config(tmp_path / "nope.json")
    assert info.value.source == str(tmp_path / "nope.json")


def test_load_docker_config_garbled_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"auths": {', encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_docker_config(path)


# --- entries: username/password and the base64 "auth" field ---------------------------------


@pytest.mark.parametrize(
    ("entry", "username", "password"),
    [
        # TestDockerConfigEntryJSONDecode
        ({"username": "foo", "password": "bar", "email": "foo@example.com"}, "foo", "bar"),
        ({"auth": "Zm9vOmJhcg==", "email": "foo@example.com"}, "foo", "bar"),
        # auth field overrides username & password
        ({"username": "foo", "password": "bar", "auth": "cGluZzpwb25n"}, "ping", "pong"),
        # decodeDockerConfigFieldAuth: unpadded data uses RawStdEncoding
        ({"auth": "Zm9vOmJhcg"}, "foo", "bar"),
        # Go's base64 decoders skip newlines
        ({"auth": "Zm9vOm\nJhcg==\n"}, "foo", "bar"),
        ({"auth": "Zm9vOmJhcgo="}, "foo", "bar\n"),
        # only the first colon separates
        ({"auth": base64.b64encode(b"user:pa:ss").decode()}, "user", "pa:ss"),
        ({"auth": base64.b64encode(b":").decode()}, "", ""),
        # an empty auth is no auth
        ({"username": "foo", "password": "bar", "auth": ""}, "foo", "bar"),
        ({}, "", ""),
    ],
)
def test_entry_credentials(entry: dict[str, str], username: str, password: str) -> None:
    [(_, credential)] = parse_docker_config({"auths": {"quay.io": entry}}, source="s")
    assert (credential.username, credential.password) == (username, password)


@pytest.mark.parametrize(
    "auth",
    [
        "pants",  # bad base64 data
        "cGFudHM=",  # good base64 data, but no colon separating username & password
        "Zm9vOmJhcg== ",  # only newlines are skipped, not spaces
        "Zm9vOmJhcg=",  # wrong padding
        "Zm9v=mJhcg",  # padding in the middle
        "Zm9vOmJhcg@=",
        "\u00e9t\u00e9",  # not even ASCII
        base64.b64encode(b"\xff\xfe:x").decode(),  # not UTF-8
    ],
)
def test_bad_auth_is_a_config_error(auth: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_docker_config({"auths": {"quay.io": {"auth": auth}}}, source="secret/pull")
    assert info.value.path == "auths.quay.io"
    assert info.value.source == "secret/pull"
    assert "base64" in info.value.message or "username:password" in info.value.message


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ([], ""),
        ("auths", ""),
        ({"auths": []}, "auths"),
        ({"auths": {"quay.io": "not-an-object"}}, "auths.quay.io"),
        ({"quay.io": ["legacy", "but", "a", "list"]}, "auths.quay.io"),
    ],
)
def test_malformed_documents_are_config_errors(document: Any, path: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_docker_config(document, source="cfg")
    assert info.value.path == path
    assert info.value.source == "cfg"


# --- Credential never shows its secret --------------------------------------------------------


def test_credential_repr_hides_the_password() -> None:
    credential = Credential("robot", SECRET, source="secret/pull", match="quay.io")
    for text in (repr(credential), str(credential), f"{credential}", repr([credential])):
        assert SECRET not in text
    assert repr(credential) == "Credential(source='secret/pull', match='quay.io')"


def test_looked_up_credentials_repr_hides_the_password() -> None:
    auth = base64.b64encode(f"robot:{SECRET}".encode()).decode()
    keyring = _keyring({"quay.io": {"auth": auth}}, source="secret/pull")
    found = _lookup(keyring, "quay.io/org/app")
    assert [c.password for c in found] == [SECRET]
    assert SECRET not in repr(found)
    assert auth not in repr(found)


def test_config_error_does_not_echo_the_auth_field() -> None:
    auth = base64.b64encode(SECRET.encode()).decode()  # no colon: refused
    with pytest.raises(ConfigError) as info:
        parse_docker_config({"auths": {"quay.io": {"auth": auth}}}, source="s")
    assert auth not in str(info.value)
    assert SECRET not in str(info.value)


def test_keyring_round_trip_through_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"auths": {"*.example.com": {"auth": FOO_BAR}, "quay.io": _entry("q")}}),
        encoding="utf-8",
    )
    keyring = Keyring(load_docker_config(path))
    assert _users(keyring, "registry.example.com/app") == ["foo"]
    assert _users(keyring, "quay.io/app") == ["q"]
    assert _users(keyring, "example.com/app") == []


def test_identity_token_is_not_a_password() -> None:
    """The kubelet's DockerConfigEntry has no identitytoken field: it is ignored."""
    ((_, cred),) = parse_docker_config({"auths": {"quay.io": {"identitytoken": "tok"}}}, source="f")
    assert (cred.username, cred.password) == ("", "")


def test_config_json_without_auths_has_no_credentials() -> None:
    """credsStore/credHelpers are docker CLI settings the kubelet does not read."""
    assert parse_docker_config({"credsStore": "desktop"}, source="f") == []
    assert parse_docker_config({"auths": None, "credHelpers": {"x": "y"}}, source="f") == []
