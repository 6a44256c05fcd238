// Package manifests holds tmbox's own YAML: the Istio profile it installs
// the compiled-in Istio with. Upstream manifests never live here: the
// catalog pins them and sources fetch them.
package manifests

import (
	"bytes"
	_ "embed"
)

//go:embed istio-knative.yaml
var istioKnativeProfile []byte

// IstioKnativeProfile returns tmbox's IstioOperator overlay for Knative.
func IstioKnativeProfile() []byte { return bytes.Clone(istioKnativeProfile) }
