{{/* Names, labels and the RBAC rules every template shares. */}}

{{- define "duet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "duet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "duet.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "duet.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "duet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "duet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "duet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "duet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: duet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "duet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* More than one replica: kopf peering decides which one is active. */}}
{{- define "duet.peering" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/*
What kopf itself needs across the cluster: it watches CustomResourceDefinitions to notice
its resources appearing or changing; in namespaced mode it lists and watches Namespaces to
follow the ones it serves (cluster-wide it does not look at them).
*/}}
{{- define "duet.rules.cluster" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
# The healer proposes expandStorage only where the claim's StorageClass allows expansion.
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [list]
{{- if .Values.watchNamespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- else if include "duet.peering" . }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}

{{/*
What the operator does in the namespaces it serves; each verb traced to the code that needs
it (operator/duet_operator/handlers/, reconcile.py, kube/client.py). Server-side apply is a
PATCH that creates what is missing, so it needs both patch and create.
*/}}
{{- define "duet.rules.namespaced" -}}
# kopf: watch the platforms and query agents, and patch their finalizer and annotations
# (progress, diff-base); each reconcile reads its object afresh (get) and writes its status.
- apiGroups: [duet.aidatalabs.ai]
  resources: [dataplatforms, queryagents]
  verbs: [get, list, watch, patch]
- apiGroups: [duet.aidatalabs.ai]
  resources: [dataplatforms/status, queryagents/status]
  verbs: [patch]
# Children carry ownerReferences with blockOwnerDeletion, which clusters that enforce owner
# reference permissions (OwnerReferencesPermissionEnforcement) allow only with this.
- apiGroups: [duet.aidatalabs.ai]
  resources: [dataplatforms/finalizers, queryagents/finalizers]
  verbs: [update]
# One Event per condition transition (kopf.event).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# The children: listed by label, applied, watched so a deleted one comes back. Secrets are
# also read (the platform's passwords, a query agent's keys) and deleted under
# deletionPolicy: Delete; a query agent's Deployment is read for its progress.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [list, watch, create, patch]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [list, watch, create, patch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [list, watch, create, patch]
# Claims are created by the StatefulSet controller; the operator grows them (patch) and
# removes them under deletionPolicy: Delete.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [list, patch, delete]
{{- if and .Values.watchNamespaces (include "duet.peering" .) }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
