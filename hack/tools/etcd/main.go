// Command etcd is etcd's own server main, built at the version pinned in
// hack/tools/go.mod (the etcd line that Kubernetes 1.34 expects).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
