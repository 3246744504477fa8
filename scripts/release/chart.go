package main

import (
	"context"
	"path/filepath"
	"strings"
)

// chartVersion is the chart's version for a release: the release without
// its v (Helm charts and their OCI tags are plain SemVer).
func chartVersion(version string) string { return strings.TrimPrefix(version, "v") }

// packageChart packages charts/silentauth into dist/silentauth-X.Y.Z.tgz,
// its version the release's and its appVersion the release itself, which
// the chart uses as the image tag (image.tag empty): installing the chart
// of a release runs that release's image.
func packageChart(ctx context.Context, o options) error {
	return command(ctx, o.repo, nil, o.helm, "package", filepath.Join("charts", "silentauth"),
		"--version", chartVersion(o.version), "--app-version", o.version, "--destination", o.dist)
}
