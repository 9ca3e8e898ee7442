import asyncio, json
from apikit import *

async def test_explore(api):
    c = await api(registry={"images": [{"name": "registry.example.com/team/private:v1", "layers": [{"size": "1Mi"}], "auth": {"username": "robot", "password": "s3cret"}}]})
    for path in ["/version", "/api", "/apis", "/openapi/v3", "/nope", "/api/v1/nodes/kubesim-node", "/debug/pulls"]:
        r = await c.get(path); print(path, r.status, (await r.text())[:600])
    r = await c.put(PODS); print("PUT", r.status, await r.text())
    r = await c.post(PODS, data=b"{bad", headers={"Content-Type": "application/json"}); print(r.status, await r.text())
    r = await c.post(PODS, data=b"[1]", headers={"Content-Type": "application/json"}); print(r.status, await r.text())
    r = await c.post(PODS, data=b"x", headers={"Content-Type": "application/xml"}); print(r.status, await r.text())
    r = await c.post(PODS, data=(DATA/"pb_POST_secrets.bin").read_bytes(), headers={"Content-Type": PROTOBUF}); print(r.status, await r.text())
    r = await c.post(PODS, data=json.dumps(pod_manifest("bad", "doesnotexist:v9")).encode()); print(r.status, r.headers.get("Content-Type"), (await r.text())[:300])
    r = await c.post(PODS, json=pod_manifest("web", "nginx:1.27")); print(r.status)
    r = await c.post(PODS, json=pod_manifest("nev", "redis:7.4", policy="Never")); print(r.status)
    await asyncio.sleep(0.7)
    for n in ["bad", "web", "nev"]:
        r = await c.get(f"{PODS}/{n}"); print(n, json.dumps((await r.json())["status"]["containerStatuses"]))
    r = await c.get(PODS, headers={"Accept": TABLE}); print(json.dumps(await r.json())[:1500])
    r = await c.get(EVENTS); print(json.dumps(await r.json(), indent=1)[:4000])
    r = await c.get("/debug/pulls"); print(await r.text())
    r = await c.get("/api/v1/nodes/kubesim-node"); print(json.dumps((await r.json())["status"]["images"]))
    r = await c.get("/metrics"); print((await r.text())[:3000])
