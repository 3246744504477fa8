package main

import (
	"fmt"
	"os"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// checkMethod is the method ghz calls.
const checkMethod = "envoy.service.auth.v3.Authorization/Check"

// protoset returns a FileDescriptorSet of external_auth.proto and every
// file it imports, transitively, dependencies before their dependents.
// silentauth does not enable gRPC reflection, so ghz reads this instead;
// it comes from the descriptors compiled into go-control-plane, the exact
// schema the server unmarshals.
func protoset() *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := range imports.Len() {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(authv3.File_envoy_service_auth_v3_external_auth_proto)
	return set
}

// writeProtoset writes protoset() to path.
func writeProtoset(path string) error {
	b, err := proto.Marshal(protoset())
	if err != nil {
		return fmt.Errorf("protoset: %w", err)
	}
	return os.WriteFile(path, b, 0o644)
}
