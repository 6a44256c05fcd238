//go:build tools

// Package tools pins kwok, which fakes the test cluster's nodes and drives
// its pods to Running/Ready. It has its own module because it asks for newer
// k8s.io libraries than the Kubernetes 1.34 control plane in ../go.mod.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
