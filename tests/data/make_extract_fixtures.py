#!/usr/bin/env python3
"""Make the two small graphs that test batching corner cases of the extractor.

    python3 tests/data/make_extract_fixtures.py      (needs the `onnx` package)

  fixed_batch2.onnx   input `input_1` (2,4,4,3) NHWC, a FIXED batch of 2 ->
                      output `features` = ReduceMean over H, W -> (2,3)
  dynamic_dim.onnx    input `input_1` (N,4,4,3) -> output `features` = the
                      flattened input (N,48), declared (N, D) with D unknown to
                      shape inference: the dimension is only known by running it
"""

import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def save(nodes, name, inp, out):
    model = helper.make_model(helper.make_graph(nodes, name, [inp], [out]),
                              opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="continual-fixtures")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    with open(os.path.join(HERE, name + ".onnx"), "wb") as f:
        f.write(model.SerializeToString())


save([helper.make_node("ReduceMean", ["input_1"], ["features"], axes=[1, 2], keepdims=0)],
     "fixed_batch2",
     helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [2, 4, 4, 3]),
     helper.make_tensor_value_info("features", TensorProto.FLOAT, [2, 3]))
# Slice's end is computed from the input's values (sum(0·x) + 48), so shape
# inference cannot know it and the output's second axis stays unknown until the
# graph runs.
def const(name, dtype, values, dims=(1,)):
    return helper.make_node("Constant", [], [name],
                            value=helper.make_tensor(name + "_value", dtype, list(dims), values))


dynamic_nodes = [
    helper.make_node("Flatten", ["input_1"], ["flat"], axis=1),
    const("zero", TensorProto.FLOAT, [0.0], ()),
    const("width", TensorProto.FLOAT, [48.0], ()),
    helper.make_node("Mul", ["flat", "zero"], ["zeros"]),
    helper.make_node("ReduceSum", ["zeros"], ["sum"], keepdims=0),
    helper.make_node("Add", ["sum", "width"], ["end_float"]),
    helper.make_node("Cast", ["end_float"], ["end_scalar"], to=TensorProto.INT64),
    const("one_axis", TensorProto.INT64, [0]),
    helper.make_node("Unsqueeze", ["end_scalar", "one_axis"], ["end"]),
    const("start", TensorProto.INT64, [0]),
    const("axis", TensorProto.INT64, [1]),
    helper.make_node("Slice", ["flat", "start", "end", "axis"], ["features"]),
]
save(dynamic_nodes,
     "dynamic_dim",
     helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["N", 4, 4, 3]),
     helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", "D"]))
