"""A real registry backend: an asyncio client of the OCI distribution API (on aiohttp).

`media` parses manifests and picks a platform (pure), `auth` answers registry challenges
(anonymous, Basic, Bearer tokens cached per scope), `client` speaks HTTP to a registry and its
mirrors, `pull` resolves an image and fetches its blobs into the content store, `config` reads
`registry: {type: oci}` and `backend` puts it all behind the puller's `RegistryBackend`.
"""
