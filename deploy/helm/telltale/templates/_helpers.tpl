{{- define "telltale.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "telltale.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "telltale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "telltale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "telltale.labels" -}}
{{ include "telltale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "telltale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "telltale.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Where the per-workspace files come from: "configMap", "existingConfigMap",
"existingSecret" or nothing; more than one is refused. */}}
{{- define "telltale.workspacesSource" -}}
{{- $w := .Values.workspaces | default dict -}}
{{- $given := list -}}
{{- if $w.files }}{{ $given = append $given "configMap" }}{{ end -}}
{{- if $w.existingConfigMap }}{{ $given = append $given "existingConfigMap" }}{{ end -}}
{{- if $w.existingSecret }}{{ $given = append $given "existingSecret" }}{{ end -}}
{{- if gt (len $given) 1 }}
{{- fail "workspaces: give one of files, existingConfigMap and existingSecret" }}
{{- end -}}
{{- first $given | default "" -}}
{{- end -}}

{{/* Settings that hold credentials: only ever from the Secret, never in values. */}}
{{- define "telltale.secretSettings" -}}
write_keys api_tokens kafka_sasl_password slack_webhook_url
{{- end -}}

{{/* What a pod needs whatever the values say; .Values.settings wins over it. */}}
{{- define "telltale.settings" -}}
{{- $pod := dict
  "data_dir" "/var/lib/telltale"
  "web_host" "0.0.0.0"
  "web_port" (toString .Values.service.port)
  "metrics_host" "0.0.0.0"
  "metrics_port" (toString .Values.metrics.port) -}}
{{- if include "telltale.workspacesSource" . }}
{{- $_ := set $pod "workspaces_dir" "/etc/telltale/workspaces" }}
{{- end }}
{{- toYaml (merge (deepCopy .Values.settings) $pod) -}}
{{- end -}}
