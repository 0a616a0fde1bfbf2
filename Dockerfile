# syntax=docker/dockerfile:1
#
# Images for the bridge and its lab peers, from one build:
#
#   docker build -t smsbridge/bridge .                      # the gateway (default, last stage)
#   docker build --target smscsim  -t smsbridge/smscsim .   # SMSC simulator
#   docker build --target kamailio -t smsbridge/kamailio .  # Kamailio 5.6 + pua_reginfo (Debian)
#   docker build --target prosody  -t smsbridge/prosody .   # Prosody 0.12 + the bridge's auth module (Debian)
#
# docker-compose.yml builds and wires all four; kamailio/README.md and
# xmpp/README.md explain.

########## build: static Go binaries ##########
FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so source edits do not re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
RUN go build -ldflags="-s -w" -o /out/bridge ./cmd/bridge \
 && go build -ldflags="-s -w" -o /out/smscsim ./cmd/smscsim \
 && mkdir -p /out/data

########## smscsim: SMSC simulator (SMPP server) ##########
FROM gcr.io/distroless/static-debian12:nonroot AS smscsim
COPY --from=build /out/smscsim /usr/local/bin/smscsim
USER nonroot:nonroot
EXPOSE 2776/tcp
ENTRYPOINT ["/usr/local/bin/smscsim"]
CMD ["--listen", ":2776"]

########## kamailio: the IM server (config mounted, see docker-compose.yml) ##########
FROM debian:bookworm-slim AS kamailio
RUN apt-get update \
 && apt-get install -y --no-install-recommends kamailio kamailio-presence-modules \
 && rm -rf /var/lib/apt/lists/*
# pua keeps its publications in a db_text directory it must be able to write.
COPY kamailio/dbtext/ /var/lib/kamailio/dbtext/
COPY kamailio/kamailio.cfg /etc/kamailio/kamailio.cfg
RUN chown -R kamailio:kamailio /var/lib/kamailio
USER kamailio
EXPOSE 5060/udp
ENTRYPOINT ["kamailio", "-DD", "-E", "-f", "/etc/kamailio/kamailio.cfg"]

########## prosody: the XMPP server (config in prosody/, see docker-compose.yml) ##########
FROM debian:bookworm-slim AS prosody
ARG XMPP_DOMAIN=bridge.test
RUN apt-get update \
 && apt-get install -y --no-install-recommends prosody openssl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A self-signed certificate for the lab's domains; clients must be told to trust it.
RUN openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=${XMPP_DOMAIN}" \
      -addext "subjectAltName=DNS:${XMPP_DOMAIN},DNS:social.${XMPP_DOMAIN},DNS:sms.${XMPP_DOMAIN}" \
      -keyout /etc/prosody/certs/${XMPP_DOMAIN}.key -out /etc/prosody/certs/${XMPP_DOMAIN}.crt \
 && chown -R prosody:prosody /etc/prosody/certs
COPY prosody/mod_auth_bridge.lua /etc/prosody/bridge/mod_auth_bridge.lua
COPY prosody/prosody.cfg.lua /etc/prosody/prosody.cfg.lua
USER prosody
EXPOSE 5222/tcp 5347/tcp
ENTRYPOINT ["prosody", "-F"]

########## bridge: the gateway (default target) ##########
FROM gcr.io/distroless/static-debian12:nonroot AS bridge
COPY --from=build /out/bridge /usr/local/bin/bridge
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot:nonroot
VOLUME ["/data"]
# SMPP, SIP (UDP and TCP), HTTP API and metrics, MCP handset link.
EXPOSE 2775/tcp 5060/udp 5060/tcp 8080/tcp 5070/tcp
ENTRYPOINT ["/usr/local/bin/bridge", "serve"]
CMD ["--data-dir", "/data"]
