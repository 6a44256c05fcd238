//go:build tools

// Package tools pins the Kubernetes control-plane binaries that the test
// cluster runs. They are built with `go build` from this module (see
// hack/build-testcluster.sh), never linked into tmbox.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
