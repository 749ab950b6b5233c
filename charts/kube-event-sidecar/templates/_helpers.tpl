{{/* The prefix of every object's name: the release name if it says event-sidecar already. */}}
{{- define "kes.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "event-sidecar" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-event-sidecar" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kes.webhookName" -}}{{ include "kes.fullname" . }}-webhook{{- end -}}
{{- define "kes.tlsSecretName" -}}
{{- if eq .Values.webhook.tls.source "secret" -}}
{{- required "webhook.tls.secret.name is required with webhook.tls.source=secret" .Values.webhook.tls.secret.name -}}
{{- else -}}
{{- include "kes.webhookName" . }}-tls
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "kes.commonLabels" -}}
app.kubernetes.io/part-of: kube-event-sidecar
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kes.labels" -}}
{{ include "kes.commonLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* What selects the webhook's pods (and keeps them away from the webhook itself). */}}
{{- define "kes.webhookSelector" -}}
app.kubernetes.io/name: event-sidecar-webhook
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kes.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "kes.sidecarImage" -}}
{{- .Values.sidecar.image | default (include "kes.image" .) -}}
{{- end -}}

{{/* The DNS names the webhook's certificate must carry. */}}
{{- define "kes.dnsNames" -}}
{{- $svc := printf "%s.%s.svc" (include "kes.webhookName" .) .Release.Namespace -}}
{{- list $svc (printf "%s.cluster.local" $svc) | toJson -}}
{{- end -}}

{{/* The sidecar settings files/policy.yaml was generated for (sidecar/inject/settings.py's
defaults); tests/test_helm_chart.py keeps them equal to the chart's defaults. */}}
{{- define "kes.policySettings" -}}
image: ghcr.io/kube-event-sidecar/event-sidecar:0.1.0
rulesConfigMap: event-sidecar-rules
nativeSidecar: true
logPath: ""
logLevel: info
metricsPort: 9090
resources:
  requests: {cpu: 10m, memory: 96Mi}
  limits: {memory: 192Mi}
{{- end -}}

{{- define "kes.effectiveSidecar" -}}
{{- $s := deepCopy .Values.sidecar -}}
{{- $_ := set $s "image" (include "kes.sidecarImage" .) -}}
{{- toYaml $s -}}
{{- end -}}
