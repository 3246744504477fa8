package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// chart is a horizontal grouped bar chart: one group per scenario, one bar
// per series (concurrency) in each group.
type chart struct {
	Title  string
	Note   string // a line under the title
	Unit   string // of the values, shown on the axis
	Series []string
	Groups []chartGroup
}

type chartGroup struct {
	Label  string
	Values []float64 // by series; NaN: not measured
	// Reference marks the baseline: drawn on a tinted band, its values
	// as dashed lines across the plot.
	Reference bool
}

// palette colours the series; a colour-blind-safe set (Okabe–Ito).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00"}

// Layout, in pixels.
const (
	chartWidth = 800
	labelWidth = 190
	valueRoom  = 80 // right of the longest bar, for its value
	barHeight  = 13
	barGap     = 2
	groupGap   = 12
	headHeight = 64
	axisHeight = 36
)

// svg renders the chart. The output depends only on the chart, so a
// re-run with the same figures produces the same file.
func (c chart) svg() []byte {
	var b bytes.Buffer
	plotW := float64(chartWidth - labelWidth - valueRoom)
	groupH := len(c.Series)*(barHeight+barGap) - barGap
	height := headHeight + len(c.Groups)*(groupH+groupGap) + axisHeight

	top := 0.0
	for _, g := range c.Groups {
		for _, v := range g.Values {
			if !math.IsNaN(v) {
				top = math.Max(top, v)
			}
		}
	}
	step := niceStep(top / 5)
	axisMax := math.Ceil(top/step) * step
	if axisMax == 0 {
		axisMax = 1
	}
	x := func(v float64) float64 { return labelWidth + v/axisMax*plotW }

	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", esc(c.Title))
	if c.Note != "" {
		fmt.Fprintf(&b, `<text x="10" y="38" fill="#555555">%s</text>`+"\n", esc(c.Note))
	}
	// Legend.
	lx := float64(labelWidth)
	for i, s := range c.Series {
		fmt.Fprintf(&b, `<rect x="%s" y="47" width="12" height="12" fill="%s"/>`, f1(lx), palette[i%len(palette)])
		fmt.Fprintf(&b, `<text x="%s" y="57">%s</text>`+"\n", f1(lx+16), esc(s))
		lx += 24 + 7*float64(len(s))
	}
	plotTop := float64(headHeight)
	plotBottom := float64(height - axisHeight)
	// Grid and axis.
	for v := 0.0; v <= axisMax+step/2; v += step {
		label := strconv.FormatFloat(v, 'f', -1, 64)
		fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#dddddd"/>`, f1(x(v)), f1(plotTop-4), f1(x(v)), f1(plotBottom))
		fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" fill="#555555">%s</text>`+"\n", f1(x(v)), f1(plotBottom+14), label)
	}
	// The reference group's values (the baseline) as dashed lines across
	// the plot, one per series, so every bar reads against them.
	for _, g := range c.Groups {
		if !g.Reference {
			continue
		}
		for i, v := range g.Values {
			if !math.IsNaN(v) {
				fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1" stroke-dasharray="4 3"/>`+"\n",
					f1(x(v)), f1(plotTop-4), f1(x(v)), f1(plotBottom), palette[i%len(palette)])
			}
		}
	}
	fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" fill="#555555">%s</text>`+"\n",
		f1(labelWidth+plotW/2), f1(plotBottom+30), esc(c.Unit))
	// Groups.
	y := plotTop
	for _, g := range c.Groups {
		if g.Reference {
			fmt.Fprintf(&b, `<rect x="0" y="%s" width="%d" height="%d" fill="#f2f2f2"/>`+"\n", f1(y-groupGap/2), chartWidth, groupH+groupGap)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", labelWidth-8, f1(y+float64(groupH)/2+4), esc(g.Label))
		for i, v := range g.Values {
			by := y + float64(i*(barHeight+barGap))
			if math.IsNaN(v) {
				fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#999999">not measured</text>`+"\n", f1(x(0)+4), f1(by+barHeight-3))
				continue
			}
			w := math.Max(x(v)-x(0), 0.5)
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%d" fill="%s"><title>%s %s: %s %s</title></rect>`,
				f1(x(0)), f1(by), f1(w), barHeight, palette[i%len(palette)], esc(g.Label), esc(c.Series[i]), num(v), esc(c.Unit))
			fmt.Fprintf(&b, `<text x="%s" y="%s">%s</text>`+"\n", f1(x(0)+w+4), f1(by+barHeight-3), num(v))
		}
		y += float64(groupH + groupGap)
	}
	fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333333"/>`+"\n", f1(x(0)), f1(plotTop-4), f1(x(0)), f1(plotBottom))
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// niceStep rounds raw up to 1, 2, 2.5 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// num formats a value for a label: no decimals from 100 up, one below.
func num(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func esc(s string) string { return html.EscapeString(s) }
