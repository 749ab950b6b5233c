// Command etcd builds the etcd server from its Go module for the test control plane.
// `go install go.etcd.io/etcd/server/v3@...` refuses because etcd's go.mod has replace
// directives, so this wrapper calls the same entry point as etcd's own main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
