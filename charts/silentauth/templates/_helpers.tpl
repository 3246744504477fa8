{{/* Names, labels and the config.yaml the pods read. */}}

{{- define "silentauth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name alone when it already holds the chart name. */}}
{{- define "silentauth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "silentauth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "silentauth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "silentauth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "silentauth.labels" -}}
helm.sh/chart: {{ include "silentauth.chart" . }}
{{ include "silentauth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: ext-authz
app.kubernetes.io/part-of: silentauth
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "silentauth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "silentauth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "silentauth.keysSecretName" -}}
{{- default (printf "%s-keys" (include "silentauth.fullname" .)) .Values.keys.secret.name }}
{{- end }}

{{- define "silentauth.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The Service's cluster-local DNS name. */}}
{{- define "silentauth.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "silentauth.fullname" .) .Release.Namespace .Values.istio.clusterDomain }}
{{- end }}

{{/* True ("true") when the store allows several replicas and the release runs several. */}}
{{- define "silentauth.multiReplica" -}}
{{- if and (eq .Values.store.backend "redis") (or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1)) }}true{{ end }}
{{- end }}

{{/* Paths inside the container. Secrets sit outside /etc/silentauth, where
the ConfigMap is mounted, so no mount nests inside another. */}}
{{- define "silentauth.paths" -}}
config: /etc/silentauth/config.yaml
grpcTLS: /var/run/secrets/silentauth/grpc-tls
grpcClientCA: /var/run/secrets/silentauth/grpc-client-ca
sessionAPIToken: /var/run/secrets/silentauth/session-api
redisPassword: /var/run/secrets/silentauth/redis
redisCA: /var/run/secrets/silentauth/redis-ca
redisClientCert: /var/run/secrets/silentauth/redis-client
oidcClientSecret: /var/run/secrets/silentauth/oidc-client
oidcCA: /var/run/secrets/silentauth/oidc-ca
{{- end }}

{{/*
silentauth.validate fails with a clear message on values the schema cannot
judge. The memory-store rules are in values.schema.json too; they are
repeated here for `--skip-schema-validation`.
*/}}
{{- define "silentauth.validate" -}}
{{- $v := .Values }}
{{- if eq $v.store.backend "memory" }}
{{- if gt (int $v.replicaCount) 1 }}
{{- fail (printf "replicaCount %d needs store.backend=redis: the memory store keeps sessions inside one pod, so a second replica would split them" (int $v.replicaCount)) }}
{{- end }}
{{- if $v.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs store.backend=redis: the memory store keeps sessions inside one pod" }}
{{- end }}
{{- end }}
{{- $c := $v.config | default dict }}
{{- $envToken := false }}
{{- range $v.extraEnv }}{{ if eq .name "SILENTAUTH_API_TOKEN" }}{{ $envToken = true }}{{ end }}{{ end }}
{{- if not (or (($c.sessionAPI | default dict).serviceAccounts) $v.sessionAPITokenSecret.name $envToken (($c.oidc | default dict).issuerURL)) }}
{{- fail "no session-API caller: set config.sessionAPI.serviceAccounts to your login handlers' ServiceAccounts (--set 'config.sessionAPI.serviceAccounts={shop/web}'), sessionAPITokenSecret.name to a Secret holding a bearer token, or config.oidc.issuerURL for provider login. Without one nobody can start a session, and silentauth refuses to start" }}
{{- end }}
{{- $owned := list
  (list "listen.grpc.address" "ports.grpc")
  (list "listen.public.address" "ports.public")
  (list "listen.sessionAPI.address" "ports.sessionAPI")
  (list "listen.admin.address" "ports.admin")
  (list "listen.grpc.tls" "grpcTLS")
  (list "keys.secret" "keys.secret")
  (list "keys.dir" "keys.secret (keys come from the Secret)")
  (list "store.backend" "store.backend")
  (list "store.redis.addrs" "store.redis.addrs")
  (list "store.redis.passwordFile" "store.redis.passwordSecret")
  (list "store.redis.tls.caFile" "store.redis.tls.caSecret")
  (list "store.redis.tls.certFile" "store.redis.tls.clientCertSecret")
  (list "store.redis.tls.keyFile" "store.redis.tls.clientCertSecret")
  (list "sessionAPI.tokenFile" "sessionAPITokenSecret")
  (list "oidc.clientSecretFile" "oidcClientSecret")
  (list "oidc.caFile" "oidcCASecret") }}
{{- range $owned }}
{{- $path := index . 0 }}
{{- $node := $c }}
{{- $found := true }}
{{- range splitList "." $path }}
{{- if and $found (kindIs "map" $node) (hasKey $node .) }}
{{- $node = index $node . }}
{{- else }}
{{- $found = false }}
{{- end }}
{{- end }}
{{- if $found }}
{{- fail (printf "config.%s is set by the chart; use the value %s instead" $path (index . 1)) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
silentauth.config is the config.yaml: the fields the chart decides (listen
addresses, keys Secret, store, files it mounts), with .Values.config merged
over them.
*/}}
{{- define "silentauth.config" -}}
{{- $v := .Values }}
{{- $paths := include "silentauth.paths" . | fromYaml }}
{{- $grpc := dict "address" (printf ":%d" (int $v.ports.grpc)) }}
{{- if $v.grpcTLS.secretName }}
{{- $tls := dict "certFile" (printf "%s/tls.crt" $paths.grpcTLS) "keyFile" (printf "%s/tls.key" $paths.grpcTLS) }}
{{- if $v.grpcTLS.clientCA.enabled }}
{{- $_ := set $tls "clientCAFile" (printf "%s/%s" $paths.grpcClientCA $v.grpcTLS.clientCA.key) }}
{{- end }}
{{- $_ := set $grpc "tls" $tls }}
{{- end }}
{{- $listen := dict
  "grpc" $grpc
  "public" (dict "address" (printf ":%d" (int $v.ports.public)))
  "sessionAPI" (dict "address" (printf ":%d" (int $v.ports.sessionAPI)))
  "admin" (dict "address" (printf ":%d" (int $v.ports.admin))) }}
{{- $keys := dict "secret" (dict "name" (include "silentauth.keysSecretName" .) "namespace" .Release.Namespace) }}
{{- $store := dict "backend" $v.store.backend }}
{{- if eq $v.store.backend "redis" }}
{{- $r := $v.store.redis }}
{{- $redis := dict "addrs" $r.addrs "mode" $r.mode "db" (int $r.db) }}
{{- with $r.masterName }}{{ $_ := set $redis "masterName" . }}{{ end }}
{{- with $r.username }}{{ $_ := set $redis "username" . }}{{ end }}
{{- with $r.keyPrefix }}{{ $_ := set $redis "keyPrefix" . }}{{ end }}
{{- if $r.passwordSecret.name }}
{{- $_ := set $redis "passwordFile" (printf "%s/%s" $paths.redisPassword $r.passwordSecret.key) }}
{{- end }}
{{- if $r.tls.enabled }}
{{- $tls := dict "enabled" true }}
{{- with $r.tls.serverName }}{{ $_ := set $tls "serverName" . }}{{ end }}
{{- if $r.tls.caSecret.name }}
{{- $_ := set $tls "caFile" (printf "%s/%s" $paths.redisCA $r.tls.caSecret.key) }}
{{- end }}
{{- if $r.tls.clientCertSecret }}
{{- $_ := set $tls "certFile" (printf "%s/tls.crt" $paths.redisClientCert) }}
{{- $_ := set $tls "keyFile" (printf "%s/tls.key" $paths.redisClientCert) }}
{{- end }}
{{- $_ := set $redis "tls" $tls }}
{{- end }}
{{- $_ := set $store "redis" $redis }}
{{- end }}
{{- $computed := dict "listen" $listen "keys" $keys "store" $store }}
{{- if $v.sessionAPITokenSecret.name }}
{{- $_ := set $computed "sessionAPI" (dict "tokenFile" (printf "%s/%s" $paths.sessionAPIToken $v.sessionAPITokenSecret.key)) }}
{{- end }}
{{- $oidc := dict }}
{{- if $v.oidcClientSecret.name }}
{{- $_ := set $oidc "clientSecretFile" (printf "%s/%s" $paths.oidcClientSecret $v.oidcClientSecret.key) }}
{{- end }}
{{- if $v.oidcCASecret.name }}
{{- $_ := set $oidc "caFile" (printf "%s/%s" $paths.oidcCA $v.oidcCASecret.key) }}
{{- end }}
{{- if $oidc }}
{{- $_ := set $computed "oidc" $oidc }}
{{- end }}
{{- mustMergeOverwrite $computed (deepCopy ($v.config | default dict)) | toYaml }}
{{- end }}

{{/* The refresh and logout paths, and the provider-login callback when
config.oidc is on: answered inside Check. */}}
{{- define "silentauth.authPaths" -}}
{{- $policy := (.Values.config | default dict).policy | default dict }}
{{- $paths := list ($policy.refreshPath | default "/auth/refresh") ($policy.logoutPath | default "/auth/logout") }}
{{- $oidc := (.Values.config | default dict).oidc | default dict }}
{{- if $oidc.issuerURL }}
{{- $paths = append $paths ($oidc.callbackPath | default "/auth/callback") }}
{{- end }}
{{- $paths | toJson }}
{{- end }}

{{/* The redirect URI to register at the provider (config.oidc). */}}
{{- define "silentauth.oidcRedirect" -}}
{{- $oidc := (.Values.config | default dict).oidc | default dict }}
{{- $oidc.redirectURL | default (printf "https://<host>%s" ($oidc.callbackPath | default "/auth/callback")) }}
{{- end }}

{{/* The meshConfig extensionProviders entry. */}}
{{- define "silentauth.istioProvider" -}}
- name: {{ .Values.istio.provider.name }}
  envoyExtAuthzGrpc:
    service: {{ include "silentauth.serviceHost" . }}
    port: {{ .Values.ports.grpc }}
    timeout: {{ .Values.istio.provider.timeout }}
    failOpen: {{ .Values.istio.provider.failOpen }}
    statusOnError: {{ .Values.istio.provider.statusOnError | quote }}
{{- end }}

{{/* Labels as k=v,k=v, for messages. */}}
{{- define "silentauth.inlineLabels" -}}
{{- $out := list }}
{{- range $k, $v := . }}{{ $out = append $out (printf "%s=%s" $k $v) }}{{ end }}
{{- join "," $out }}
{{- end }}
