{{/* Names and labels shared by every template. */}}

{{- define "pipesync.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pipesync.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pipesync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pipesync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pipesync.labels" -}}
{{ include "pipesync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "pipesync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pipesync.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pipesync.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
What the operator does in a namespace it watches, derived from the calls in
controllers/kube.py, controllers/*.py, observe/records.py and kopf's own needs. Nothing more:
tests/e2e/test_chart.py checks it with `kubectl auth can-i`.
*/}}
{{- define "pipesync.namespacedRules" -}}
# Runs: created by RecurringRuns and GitSources, deleted by history limits and pruning.
# Pipelines, Experiments, RecurringRuns: server-side applied from git (create + patch),
# pruned (delete). kopf watches them and patches its annotations.
- apiGroups: [pipesync.io]
  resources: [runs, pipelines, experiments, recurringruns]
  verbs: [get, list, watch, create, patch, delete]
# GitSources are the user's: read and annotated, never created or deleted.
- apiGroups: [pipesync.io]
  resources: [gitsources]
  verbs: [get, list, watch, patch]
# Status is written in one place per kind.
- apiGroups: [pipesync.io]
  resources: [runs/status, pipelines/status, experiments/status, recurringruns/status, gitsources/status]
  verbs: [patch]
# Task pods: listed and watched per run, created and deleted (cancel, timeout, retry).
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, delete]
# Logs mirrored to S3.
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
# A run's pinned spec and large inputs.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create]
# Git credentials and webhook tokens that GitSources name.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# kopf posts Events on the objects it handles.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* kopf discovers the CRDs it serves at startup and watches them for changes. */}}
{{- define "pipesync.discoveryRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end -}}

{{/* The web UI checks every visitor's token and rights with the API server (TokenReview,
SubjectAccessReview): cluster-scoped create-only APIs that grant nothing themselves. */}}
{{- define "pipesync.uiRules" -}}
{{- if .Values.ui.enabled }}
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- end -}}
