module github.com/wasmpipe/wasmpipe/plugins/go/count

go 1.25

require github.com/wasmpipe/wasmpipe/sdk/go v0.1.0

require go.bytecodealliance.org/pkg v0.2.3 // indirect

replace github.com/wasmpipe/wasmpipe/sdk/go => ../../../sdk/go
