{{/* Name of the chart, or nameOverride. */}}
{{- define "regatta.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's resources; short enough for pod names with an ordinal. */}}
{{- define "regatta.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "regatta.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "regatta.selectorLabels" -}}
app.kubernetes.io/name: {{ include "regatta.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ include "regatta.component" . }}
{{- end }}

{{- define "regatta.labels" -}}
helm.sh/chart: {{ include "regatta.chart" . }}
{{ include "regatta.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* "true" for a core release (mode core or leader), "" for an edge. */}}
{{- define "regatta.isCore" -}}
{{- if has .Values.mode (list "core" "leader") }}true{{ end }}
{{- end }}

{{- define "regatta.component" -}}
{{- if include "regatta.isCore" . }}core{{ else }}edge{{ end }}
{{- end }}

{{- define "regatta.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "regatta.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "regatta.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "regatta.headless" -}}
{{ include "regatta.fullname" . }}-headless
{{- end }}

{{/* DNS domain of the headless Service: <pod>.<this> names a core pod. */}}
{{- define "regatta.peerDomain" -}}
{{ include "regatta.headless" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end }}

{{/* URL scheme of a port: https once its TLS is on. Takes the port's tls values. */}}
{{- define "regatta.scheme" -}}
{{- if eq .mode "disabled" }}http{{ else }}https{{ end }}
{{- end }}

{{/* Secret holding a port's certificate. Takes (dict "root" $ "port" "api" "tls" .Values.api.tls). */}}
{{- define "regatta.tlsSecret" -}}
{{- default (printf "%s-%s-cert" (include "regatta.fullname" .root) .port) .tls.secretName }}
{{- end }}

{{/*
Members the cluster was created with: raft.initialReplicas when set; otherwise what the
StatefulSet already in the cluster recorded at its first install (its annotation
regatta/initial-replicas, read with `lookup` on install and upgrade); otherwise replicas.
Offline rendering (helm template, GitOps tools) has no lookup: set raft.initialReplicas there
before changing replicas.
*/}}
{{- define "regatta.initialReplicas" -}}
{{- if .Values.raft.initialReplicas }}
{{- int .Values.raft.initialReplicas }}
{{- else }}
{{- $existing := lookup "apps/v1" "StatefulSet" .Release.Namespace (include "regatta.fullname" .) }}
{{- $recorded := "" }}
{{- if $existing }}
{{- $recorded = index ($existing.metadata.annotations | default dict) "regatta/initial-replicas" | default "" }}
{{- end }}
{{- if $recorded }}{{ int $recorded }}{{ else }}{{ int .Values.replicas }}{{ end }}
{{- end }}
{{- end }}

{{/* Raft URL of core node `id` (pod <fullname>-<id>). Takes (dict "root" $ "id" N). */}}
{{- define "regatta.raftUrl" -}}
{{ include "regatta.scheme" .root.Values.raft.tls }}://{{ include "regatta.fullname" .root }}-{{ .id }}.{{ include "regatta.peerDomain" .root }}:{{ .root.Values.raft.port }}
{{- end }}

{{/* --raft.initial-members: id=url for pods 1..initialReplicas. */}}
{{- define "regatta.initialMembers" -}}
{{- $root := . }}
{{- $members := list }}
{{- range $i := until (int (include "regatta.initialReplicas" .)) }}
{{- $id := add1 $i }}
{{- $members = append $members (printf "%d=%s" $id (include "regatta.raftUrl" (dict "root" $root "id" $id))) }}
{{- end }}
{{- join "," $members }}
{{- end }}

{{/* The edge's upstreams, comma-separated, from replication.leaderAddress (string or list). */}}
{{- define "regatta.upstreams" -}}
{{- $addr := .Values.replication.leaderAddress }}
{{- if kindIs "slice" $addr }}{{ join "," $addr }}{{ else }}{{ $addr }}{{ end }}
{{- end }}

{{- define "regatta.maintenanceSecret" -}}
{{- default (printf "%s-maintenance-token" (include "regatta.fullname" .)) .Values.maintenance.token.secretName }}
{{- end }}

{{- define "regatta.tablesSecret" -}}
{{- default (printf "%s-tables-token" (include "regatta.fullname" .)) .Values.tables.token.secretName }}
{{- end }}

{{- define "regatta.objectStoreSecret" -}}
{{- if eq .Values.objectStore.credentials.source "secret" }}
{{- required "objectStore.credentials.existingSecret is required with source: secret" .Values.objectStore.credentials.existingSecret }}
{{- else }}
{{- printf "%s-object-store" (include "regatta.fullname" .) }}
{{- end }}
{{- end }}

{{/* Minimum pods of a core PDB: a Raft quorum, or more if asked. */}}
{{- define "regatta.quorum" -}}
{{- add1 (div (int .Values.replicas) 2) }}
{{- end }}

{{/* Client options of the `regatta` CLI in hook and backup Jobs: the API Service, its CA. */}}
{{- define "regatta.clientArgs" -}}
- --address={{ include "regatta.scheme" .Values.api.tls }}://{{ include "regatta.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ .Values.api.port }}
{{- if ne .Values.api.tls.mode "disabled" }}
- --ca=/tls/api/ca.crt
{{- if .Values.api.tls.clientCertAuth }}
- --cert=/tls/api/tls.crt
- --key=/tls/api/tls.key
{{- end }}
{{- end }}
{{- end }}

{{- define "regatta.clientEnv" -}}
{{- if .Values.maintenance.enabled }}
- name: REGATTA_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "regatta.maintenanceSecret" . }}
      key: token
{{- end }}
{{- end }}
