#!/usr/bin/env bash
# Self-signed TLS for the webhook, without cert-manager: creates a CA and a serving certificate
# (openssl), stores them in the Secret the Deployment mounts, and puts the CA into the
# MutatingWebhookConfiguration's caBundle. Run after `kubectl apply -k manifests/webhook`, with
# credentials that may write Secrets in the namespace and patch the configuration.
# Re-running it rotates the certificate (the webhook reloads it without a restart).
#
# Environment: NAMESPACE (event-sidecar-system), SERVICE (event-sidecar-webhook),
# SECRET (event-sidecar-webhook-tls), WEBHOOK_CONFIG (event-sidecar-injector), DAYS (365),
# KUBECTL (kubectl; e.g. "kubectl --context prod").
set -euo pipefail

NAMESPACE=${NAMESPACE:-event-sidecar-system}
SERVICE=${SERVICE:-event-sidecar-webhook}
SECRET=${SECRET:-event-sidecar-webhook-tls}
WEBHOOK_CONFIG=${WEBHOOK_CONFIG:-event-sidecar-injector}
DAYS=${DAYS:-365}
KUBECTL=${KUBECTL:-kubectl}

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
dns="$SERVICE.$NAMESPACE.svc"

# openssl's chatter is shown only when it fails.
quiet() { "$@" 2>"$dir/err" || { cat "$dir/err" >&2; return 1; }; }
# The CN is informative only (and limited to 64 characters); clients check the SANs.
quiet openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -subj "/CN=$SERVICE-ca" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt"
quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=$SERVICE" \
  -keyout "$dir/tls.key" -out "$dir/tls.csr"
printf 'subjectAltName=DNS:%s,DNS:%s.cluster.local\nextendedKeyUsage=serverAuth\n' "$dns" "$dns" \
  > "$dir/ext.cnf"
quiet openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
  -CAcreateserial -days "$DAYS" -extfile "$dir/ext.cnf" -out "$dir/tls.crt"

$KUBECTL -n "$NAMESPACE" create secret generic "$SECRET" --type=kubernetes.io/tls \
  --from-file=tls.crt="$dir/tls.crt" --from-file=tls.key="$dir/tls.key" \
  --from-file=ca.crt="$dir/ca.crt" --dry-run=client -o yaml | $KUBECTL apply -f -
ca_bundle=$(base64 < "$dir/ca.crt" | tr -d '\n')
$KUBECTL patch mutatingwebhookconfiguration "$WEBHOOK_CONFIG" --type=json \
  -p "[{\"op\": \"add\", \"path\": \"/webhooks/0/clientConfig/caBundle\", \"value\": \"$ca_bundle\"}]"
echo "TLS for $dns stored in secret $NAMESPACE/$SECRET; caBundle set on $WEBHOOK_CONFIG" >&2
