# The lab's runner image for the Kubernetes Job (topologies/kubernetes/runner.yaml).
# Not built on the lab's own machine class (no image can be pulled there); on a machine that can:
#   docker build -f topologies/images/lab.Dockerfile -t redislab:dev .
#   kind load docker-image redislab:dev     # or push it to your registry and edit runner.yaml
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-tools && rm -rf /var/lib/apt/lists/*
COPY . /lab
RUN pip install --no-cache-dir '/lab[kubernetes]'
WORKDIR /results
ENTRYPOINT []
