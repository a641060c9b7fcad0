// kstatus reads one Kubernetes object as JSON on stdin and prints what Flux's health
// checks (sigs.k8s.io/cli-utils/pkg/kstatus) and an Argo CD Lua health check say of it.
//
// Why: issue 15 found kstatus calling failed Runs healthy; the e2e suite checks the real
// library, and runs the chart's Lua health checks with gopher-lua as Argo CD does.
//
// Usage:
//
//	kstatus < obj.json              -> {"status":"Current","message":"..."}
//	kstatus lua check.lua < obj.json -> {"status":"Healthy","message":"..."}
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	// The apimachinery decoder keeps integers int64, as kstatus's accessors expect.
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		fail(fmt.Errorf("stdin: %w", err))
	}
	obj := u.Object
	var r result
	switch {
	case len(os.Args) == 1:
		r, err = kstatus(obj)
	case len(os.Args) == 3 && os.Args[1] == "lua":
		r, err = luaHealth(os.Args[2], obj)
	default:
		err = fmt.Errorf("usage: kstatus [lua CHECK.lua] < object.json")
	}
	if err != nil {
		fail(err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(2)
}

func kstatus(obj map[string]interface{}) (result, error) {
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return result{}, err
	}
	return result{Status: res.Status.String(), Message: res.Message}, nil
}

// luaHealth runs a health script the way Argo CD does: the object is the global `obj`
// and the script returns a table with `status` and `message`.
func luaHealth(path string, obj map[string]interface{}) (result, error) {
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, open := range []struct {
		name string
		fn   lua.LGFunction
	}{{lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}} {
		L.Push(L.NewFunction(open.fn))
		L.Push(lua.LString(open.name))
		L.Call(1, 0)
	}
	L.SetGlobal("obj", toLua(L, obj))
	if err := L.DoFile(path); err != nil {
		return result{}, err
	}
	tbl, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		return result{}, fmt.Errorf("%s: the script must return a table", path)
	}
	return result{
		Status:  lua.LVAsString(tbl.RawGetString("status")),
		Message: lua.LVAsString(tbl.RawGetString("message")),
	}, nil
}

func toLua(L *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case map[string]interface{}:
		t := L.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(L, e))
		}
		return t
	case []interface{}:
		t := L.NewTable()
		for _, e := range x {
			t.Append(toLua(L, e))
		}
		return t
	case string:
		return lua.LString(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case bool:
		return lua.LBool(x)
	default:
		return lua.LNil
	}
}
