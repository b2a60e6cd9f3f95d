{{/* Names, labels and cloudcore.yaml, shared by the templates. */}}

{{- define "cloudcore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: the release name when it already holds the chart's name. */}}
{{- define "cloudcore.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cloudcore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cloudcore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudcore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cloudcore.labels" -}}
{{ include "cloudcore.selectorLabels" . }}
app.kubernetes.io/part-of: apiary
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "cloudcore.chart" . }}
{{- end -}}

{{- define "cloudcore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cloudcore.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cloudcore.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* cloudcore.yaml before .Values.config is merged over it. */}}
{{- define "cloudcore.baseConfig" -}}
apiVersion: cloudcore.config.kubeedge.io/v1alpha1
kind: CloudCore
commonConfig:
  monitorServer:
    bindAddress: {{ printf "0.0.0.0:%d" (int .Values.monitor.port) | quote }}
  dataDir: {{ .Values.dataDir | quote }}
kubeAPIConfig:
  kubeConfig: ""
  master: ""
modules:
  cloudHub:
    advertiseAddress: {{- toYaml .Values.cloudHub.advertiseAddress | nindent 6 }}
    dnsNames: {{- toYaml (append .Values.cloudHub.dnsNames (printf "%s.%s.svc" (include "cloudcore.fullname" .) .Release.Namespace)) | nindent 6 }}
    websocket:
      enable: {{ .Values.cloudHub.websocket.enable }}
      address: 0.0.0.0
      port: {{ int .Values.cloudHub.websocket.port }}
    quic:
      enable: {{ .Values.cloudHub.quic.enable }}
      address: 0.0.0.0
      port: {{ int .Values.cloudHub.quic.port }}
    https:
      enable: true
      address: 0.0.0.0
      port: {{ int .Values.cloudHub.https.port }}
{{- end -}}

{{/* The whole cloudcore.yaml: the base with .Values.config merged over it. */}}
{{- define "cloudcore.config" -}}
{{- $base := include "cloudcore.baseConfig" . | fromYaml -}}
{{- toYaml (mergeOverwrite $base (deepCopy (default dict .Values.config))) -}}
{{- end -}}

{{/* The monitor port, from cloudcore.yaml's commonConfig.monitorServer.bindAddress. */}}
{{- define "cloudcore.monitorPort" -}}
{{- $config := include "cloudcore.config" . | fromYaml -}}
{{- splitList ":" $config.commonConfig.monitorServer.bindAddress | last -}}
{{- end -}}
