{{/*
The regatta container and the pod around it, shared by the core StatefulSet and the edge
Deployment. The image has no shell: every value a node needs from its pod comes from the
downward API into environment variables, which the node reads itself (REGATTA_*) or which
Kubernetes expands in the arguments ($(POD_NAME)).
*/}}
{{- define "regatta.args" -}}
{{- $core := include "regatta.isCore" . -}}
{{- $host := .Values.listenHost -}}
- {{ ternary "core" "edge" (not (empty $core)) }}
- --data-dir=/data/regatta
- --api.address={{ include "regatta.scheme" .Values.api.tls }}://{{ $host }}:{{ .Values.api.port }}
- --rest.address=http://{{ $host }}:{{ .Values.metricsPort }}
- --replication.address={{ include "regatta.scheme" .Values.replication.tls }}://{{ ternary $host "127.0.0.1" .Values.replication.server.enabled }}:{{ .Values.replication.server.port }}
- --replication.heartbeat-interval={{ .Values.replication.heartbeatInterval }}
- --log.level={{ .Values.logLevel }}
- --log.format={{ .Values.logFormat }}
{{- if $core }}
- --api.advertise-address={{ include "regatta.scheme" .Values.api.tls }}://$(POD_NAME).{{ include "regatta.peerDomain" . }}:{{ .Values.api.port }}
- --replication.advertise-address={{ include "regatta.scheme" .Values.replication.tls }}://$(POD_NAME).{{ include "regatta.peerDomain" . }}:{{ .Values.replication.server.port }}
- --raft.address={{ include "regatta.scheme" .Values.raft.tls }}://$(POD_NAME).{{ include "regatta.peerDomain" . }}:{{ .Values.raft.port }}
- --raft.listen-address={{ include "regatta.scheme" .Values.raft.tls }}://{{ $host }}:{{ .Values.raft.port }}
- --raft.initial-members={{ include "regatta.initialMembers" . }}
- --raft.cluster-name={{ .Values.raft.clusterName }}
- --raft.heartbeat-interval={{ .Values.raft.heartbeatInterval }}
- --raft.election-timeout={{ .Values.raft.electionTimeout }}
- --raft.snapshot-entries={{ int64 .Values.raft.snapshotEntries }}
- --raft.keep-entries={{ int64 .Values.raft.keepEntries }}
- --node-name=$(POD_NAME)
- --object-store.snapshot-entries={{ int64 .Values.objectStore.snapshotEntries }}
- --object-store.snapshot-interval={{ .Values.objectStore.snapshotInterval }}
- --object-store.keep-snapshots={{ int64 .Values.objectStore.keepSnapshots }}
{{- else }}
- --replication.leader-address={{ required "replication.leaderAddress: an edge needs at least one upstream (the core's <fullname>-replication Service, or another edge's)" (include "regatta.upstreams" . | trimAll " ") }}
- --replication.max-lag={{ int64 .Values.replication.maxLag }}
- --replication.staleness={{ .Values.replication.staleness }}
- --node-name=$(POD_NAME)
{{- end }}
{{- with .Values.objectStore.url }}
- --object-store={{ . }}
{{- end }}
{{- with .Values.objectStore.endpoint }}
- --object-store.endpoint={{ . }}
{{- end }}
{{- with .Values.objectStore.region }}
- --object-store.region={{ . }}
{{- end }}
{{- if ne .Values.api.tls.mode "disabled" }}
- --api.cert-filename=/tls/api/tls.crt
- --api.key-filename=/tls/api/tls.key
{{- if .Values.api.tls.clientCertAuth }}
- --api.ca-filename=/tls/api/ca.crt
- --api.client-cert-auth
{{- end }}
{{- end }}
{{- if ne .Values.replication.tls.mode "disabled" }}
- --replication.cert-filename=/tls/replication/tls.crt
- --replication.key-filename=/tls/replication/tls.key
- --replication.ca-filename=/tls/replication/ca.crt
{{- if .Values.replication.tls.clientCertAuth }}
- --replication.client-cert-auth
{{- end }}
{{- if and (not $core) .Values.replication.tls.serverName }}
- --replication.server-name={{ .Values.replication.tls.serverName }}
{{- end }}
{{- end }}
{{- if and $core (ne .Values.raft.tls.mode "disabled") }}
- --raft.cert-filename=/tls/raft/tls.crt
- --raft.key-filename=/tls/raft/tls.key
- --raft.ca-filename=/tls/raft/ca.crt
{{- end }}
{{- if .Values.config }}
- --config=/config/config.yaml
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end }}

{{- define "regatta.env" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- if include "regatta.isCore" . }}
# The node id is the pod's ordinal (the StatefulSet's ordinals start at 1), from the label
# Kubernetes sets on every StatefulSet pod.
- name: REGATTA_RAFT_NODE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['apps.kubernetes.io/pod-index']
{{- end }}
{{- if .Values.maintenance.enabled }}
- name: REGATTA_MAINTENANCE_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "regatta.maintenanceSecret" . }}
      key: token
{{- end }}
{{- if .Values.tables.enabled }}
- name: REGATTA_TABLES_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "regatta.tablesSecret" . }}
      key: token
{{- end }}
{{- if ne .Values.objectStore.credentials.source "none" }}
- name: REGATTA_OBJECT_STORE_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "regatta.objectStoreSecret" . }}
      key: {{ .Values.objectStore.credentials.accessKeyIdKey }}
- name: REGATTA_OBJECT_STORE_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "regatta.objectStoreSecret" . }}
      key: {{ .Values.objectStore.credentials.secretAccessKeyKey }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "regatta.probe" -}}
httpGet:
  path: {{ .path }}
  port: http-metrics
  scheme: HTTP
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
successThreshold: {{ .probe.successThreshold }}
{{- end }}

{{/* Volumes of the certificates a node uses: one Secret per port with TLS. */}}
{{- define "regatta.tlsVolumes" -}}
{{- $root := . }}
{{- range $port, $tls := dict "api" .Values.api.tls "replication" .Values.replication.tls "raft" .Values.raft.tls }}
{{- if and (ne $tls.mode "disabled") (or (ne $port "raft") (include "regatta.isCore" $root)) }}
- name: tls-{{ $port }}
  secret:
    secretName: {{ include "regatta.tlsSecret" (dict "root" $root "port" $port "tls" $tls) }}
{{- end }}
{{- end }}
{{- end }}

{{- define "regatta.tlsMounts" -}}
{{- $root := . }}
{{- range $port, $tls := dict "api" .Values.api.tls "replication" .Values.replication.tls "raft" .Values.raft.tls }}
{{- if and (ne $tls.mode "disabled") (or (ne $port "raft") (include "regatta.isCore" $root)) }}
- name: tls-{{ $port }}
  mountPath: /tls/{{ $port }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{- define "regatta.podSpec" -}}
serviceAccountName: {{ include "regatta.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
containers:
  - name: regatta
    image: {{ include "regatta.image" . | quote }}
    imagePullPolicy: {{ .Values.image.imagePullPolicy }}
    args:
      {{- include "regatta.args" . | nindent 6 }}
    env:
      {{- include "regatta.env" . | nindent 6 }}
    ports:
      - name: grpc
        containerPort: {{ .Values.api.port }}
      - name: http-metrics
        containerPort: {{ .Values.metricsPort }}
      {{- if .Values.replication.server.enabled }}
      - name: replication
        containerPort: {{ .Values.replication.server.port }}
      {{- end }}
      {{- if include "regatta.isCore" . }}
      - name: raft
        containerPort: {{ .Values.raft.port }}
      {{- end }}
    startupProbe:
      {{- include "regatta.probe" (dict "path" "/healthz" "probe" .Values.startupProbe) | nindent 6 }}
    livenessProbe:
      {{- include "regatta.probe" (dict "path" "/healthz" "probe" .Values.livenessProbe) | nindent 6 }}
    readinessProbe:
      {{- include "regatta.probe" (dict "path" "/readyz" "probe" .Values.readinessProbe) | nindent 6 }}
    {{- with .Values.resources }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    securityContext:
      {{- toYaml .Values.securityContext | nindent 6 }}
    volumeMounts:
      - name: data
        mountPath: /data
      - name: tmp
        mountPath: /tmp
      {{- if .Values.config }}
      - name: config
        mountPath: /config
        readOnly: true
      {{- end }}
      {{- with (include "regatta.tlsMounts" . | trim) }}{{ . | nindent 6 }}{{ end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- if not (include "regatta.isCore" .) }}
  - name: data
    emptyDir:
      {{- with .Values.edge.dataVolume.sizeLimit }}
      sizeLimit: {{ . }}
      {{- end }}
      {{- with .Values.edge.dataVolume.medium }}
      medium: {{ . }}
      {{- end }}
  {{- end }}
  {{- if .Values.config }}
  - name: config
    configMap:
      name: {{ include "regatta.fullname" . }}-config
  {{- end }}
  {{- with (include "regatta.tlsVolumes" . | trim) }}{{ . | nindent 2 }}{{ end }}
{{- if .Values.podAntiAffinity.enabled }}
affinity:
  podAntiAffinity:
    {{- if eq .Values.podAntiAffinity.type "hard" }}
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: {{ .Values.podAntiAffinity.topologyKey }}
        labelSelector:
          matchLabels:
            {{- include "regatta.selectorLabels" . | nindent 12 }}
    {{- else }}
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: {{ .Values.podAntiAffinity.topologyKey }}
          labelSelector:
            matchLabels:
              {{- include "regatta.selectorLabels" . | nindent 14 }}
    {{- end }}
{{- end }}
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
