# kubesim-images in a container: `docker build -t kubesim-images .`
#   docker run --rm kubesim-images explain nginx -o json
#   docker run --rm -v "$PWD/config:/config" kubesim-images scenario run /config/scenarios/serial-vs-parallel.yaml
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY kubesim_images ./kubesim_images
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --system --home-dir /var/lib/kubesim-images --create-home kubesim
COPY --from=build /install /usr/local
COPY config /usr/share/kubesim-images/config
USER kubesim
ENV XDG_STATE_HOME=/var/lib/kubesim-images
ENTRYPOINT ["kubesim-images"]
CMD ["scenario", "run", "/usr/share/kubesim-images/config/scenarios/serial-vs-parallel.yaml"]
