//go:build tools

// Package tools pins the two servers' main packages so that go.mod and go.sum hold
// everything `go build` needs under -mod=readonly.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
