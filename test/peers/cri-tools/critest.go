// Package critools pins Kubernetes' CRI validation suite for shimlab's tests.
//
// critest has no package of its own to build: upstream's Makefile builds it as
// the test binary of sigs.k8s.io/cri-tools/cmd/critest (`go test -c`), and so
// does src/harness/peers/cri-tools.ts, from this module. Go only keeps the
// requirements (and go.sum lines) of packages this module uses, so this file
// imports what that test file imports; critest's parallel mode runs the ginkgo
// CLI, a `tool` in go.mod, so that its version is the one critest links.
package critools

import (
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "sigs.k8s.io/cri-tools/pkg/benchmark"
	_ "sigs.k8s.io/cri-tools/pkg/common"
	_ "sigs.k8s.io/cri-tools/pkg/framework"
	_ "sigs.k8s.io/cri-tools/pkg/validate"
	_ "sigs.k8s.io/cri-tools/pkg/version"
)
