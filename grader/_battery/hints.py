"""What the battery says to a student about each kind of case: how torch behaves there."""

HINTS = {
    "clamp": ("torch clamps each log term at -100: log(0) counts as -100, so 0 * log(0) is 0 "
              "and a wrong certain prediction costs 100. Clamp the logs, "
              "torch.clamp(torch.log(p), min=-100), not the probabilities."),
    "epsilon": ("log(1e-30) is about -69, above the clamp at -100, and torch keeps it. Clamping "
                "the probabilities with a small epsilon changes such values: clamp the log "
                "terms at -100 instead."),
    "stable": ("log(sigmoid(x)) rounds to log(0) once |x| is large (about 17 in float32). Use a "
               "form that never takes the log of a rounded probability: "
               "(1 - y) * x - logsigmoid(x), with torch.nn.functional.logsigmoid."),
    "kink": ("max(x, 0) and |x| have a kink at x = 0, where autograd returns one slope that each "
             "operation chooses (relu and abs 0, clamp 1, torch.maximum 0.5): a formula built from them "
             "has the right value there but, unless the choices happen to cancel, not torch's gradient, "
             "sigmoid(0) - y = 0.5 - y. Build it from smooth functions: (1 - y) * x - logsigmoid(x), "
             "or softplus."),
    "reduction": ("'mean' averages the per-element losses over all elements, 'sum' adds them up, "
                  "and 'none' returns them with the input's shape."),
    "weight": ("weight multiplies each element's loss before the reduction, broadcasting like "
               "any elementwise product; 'mean' still divides by the number of elements, not "
               "by the sum of the weights."),
    "pos_weight": ("pos_weight multiplies only the positive term, y * log(sigmoid(x)), not the "
                   "negative one, and broadcasts against the last dimension."),
    "empty": "torch returns nan for the mean of an empty tensor and 0 for its sum.",
    "target range": ("torch checks the target as well as the input: a target below 0, above 1 or nan "
                     "raises RuntimeError. Test that the values are inside, ~((y >= 0) & (y <= 1)), so that "
                     "nan, for which every comparison is False, counts as outside."),
    "larger": ("a weight (or pos_weight) may broadcast to the input's shape but never beyond it: torch "
               "raises RuntimeError when weight * loss would be larger than the input. Check the "
               "shape of the product, or use weight.expand_as(input), which raises by itself."),
    "reduction names": ("torch accepts exactly 'mean', 'sum' and 'none': no other case ('MEAN'), no spaces, "
                        "no None. Compare the string as it is and raise ValueError for anything else."),
    "legacy": ("size_average and reduce are torch's deprecated way to ask for a reduction: reduce=False "
               "gives 'none'; otherwise size_average=False gives 'sum'; either left as None keeps the "
               "other's meaning, and both None keep reduction. Once either is given, reduction is "
               "ignored."),
    "layouts": ("a tensor is not always a fresh contiguous block: a transposed, sliced or expanded one has "
                "other strides, and .view() fails on it. Use elementwise operations, .reshape() or "
                ".flatten(), which work on any layout."),
    "positional": ("torch's functions take weight as their third argument, by position too: "
                   "binary_cross_entropy(input, target, weight). Keep torch's order of parameters."),
    "promotion": ("the loss comes out in the input's dtype, whatever the dtype of weight and pos_weight: "
                  "a float64 weight does not make a float32 loss float64 (cast the weight: "
                  "weight.to(loss.dtype)). With logits, a float64 target does give a float64 result."),
    "half sums": ("in float16 a sum above 65504 overflows to inf: .mean() accumulates in float32 and does "
                  "not, so use .mean() rather than .sum() / n."),
    "large means": ("'mean' divides the sum of all the losses by their number, however many there are: one "
                    ".mean() over the whole tensor, not an average of the averages of pieces (pieces of unequal "
                    "sizes do not weigh the same in it)."),
    "half means": ("in float16, a loss divided by a number of elements in the millions is below float16's smallest "
                   "number (6e-8) and rounds to 0 or to a few multiples of it: .mean() adds the losses up in "
                   "float32 and divides once. Divide after adding up, not each loss before."),
    "buffer": ("store weight with self.register_buffer('weight', weight) in __init__: a buffer moves "
               "with the module (.to(device), .double()) and is saved in its state_dict, as nn.BCELoss's is."),
    "repeated calls": ("torch computes every call from the arguments, and a module's attributes, as they are at "
                       "that call: keep nothing from one call to the next (no result saved for later, nothing "
                       "looked up by id()), keep the caller's weight itself (self.register_buffer('weight', "
                       "weight), not a copy of it) and read self.reduction in forward."),
    "no grad": ("torch gives the same loss whether autograd records it or not: under torch.no_grad() (as when a "
                "model is evaluated), or for tensors that do not require grad, compute it the same way, with no "
                "separate shortcut."),
    "range": ("torch raises RuntimeError when an input or target lies outside [0, 1], by however little "
              "(the float32 after 1, 1 + 2**-23, is outside: no tolerance); nan lies outside too (every "
              "comparison with nan is False)."),
    "zero weight": ("a weight multiplies each element's loss, a weight of 0 included: 0 * nan and 0 * inf are "
                    "nan, so torch's loss is nan there. Multiply by the weight; do not skip the elements "
                    "whose weight is 0."),
    "size": ("torch raises ValueError when the target's shape differs from the input's, even "
             "when the two would broadcast."),
    "unknown reduction": "torch raises ValueError for a reduction other than 'mean', 'sum' or 'none'.",
    "logit targets": ("binary_cross_entropy_with_logits does not check its targets: the formula "
                      "is computed for any target value."),
    "gradients": ("autograd differentiates the operations your formula uses: a step that breaks the graph "
                  "(.item(), .detach(), torch.tensor(...), .numpy()), an in-place change, or an operation "
                  "whose derivative differs from torch's (a clamp where torch clamps a log, where, abs, max) "
                  "changes the gradient even when the values match."),
    "second order": ("torch's loss can be differentiated twice (torch.autograd.grad(..., create_graph=True), "
                     "torch.autograd.functional.hessian). A formula of torch operations is, by itself; a "
                     "torch.autograd.Function of your own needs a backward made of differentiable torch "
                     "operations, without @once_differentiable."),
    "dtype": "compute in the input's dtype, so that the result has it too.",
    "output": ("with reduction='mean' or 'sum' torch returns a 0-dimensional tensor; with 'none', "
               "a tensor of the input's shape; always on the input's device."),
    "not a tensor": ("return the tensor itself: .item(), float(...), .tolist() and .numpy() turn it "
                     "into something else."),
    "in place": ("work on new tensors (x = x.clamp(...)), never on the arguments themselves "
                 "(x.clamp_(...), x[...] = ..., x += ...)."),
    "not implemented": "replace `raise NotImplementedError()` with your own code, then run this check again.",
    "own work": ("build the loss from elementwise operations (torch.log, torch.clamp, arithmetic): "
                 "the exercise is to compute it yourself."),
    "own work in the source": ("build the loss from elementwise operations (torch.log, torch.clamp, arithmetic). "
                               "The grader reads the code your function uses, helpers included: a use of torch's "
                               "own BCE anywhere in it counts, even in a branch the tests never take. Compare "
                               "with torch in a separate cell instead."),
    "vectorized": ("use operations on whole tensors (torch.log(p), y * a + ..., .mean()) instead of a "
                   "Python loop over the elements."),
}
