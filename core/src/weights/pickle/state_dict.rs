//! What a state dict's pickle may name, and what each name builds: the storages that tensors
//! point into, the tensors (`torch._utils._rebuild_tensor_v2` and its relatives, contiguous and
//! inside their storage only) and `collections.OrderedDict`. Any other name is refused.

use std::rc::Rc;

use safetensors::Dtype;

use super::{Res, Value};

/// A storage a tensor points into: `('storage', torch.FloatStorage, key, location, numel)`.
#[derive(Clone, Debug)]
pub struct Storage {
    pub dtype: Dtype,
    pub key: String,
    /// Elements the storage holds (the legacy format's views: of the view).
    pub numel: usize,
    /// Legacy format only: where a view starts in its root storage, in elements.
    pub view_offset: usize,
}

/// A tensor of a state dict: `shape`'s elements from `offset` on, contiguous or at `stride`.
#[derive(Clone, Debug)]
pub struct TensorRef {
    pub storage: Rc<Storage>,
    /// In elements, from the start of the storage.
    pub offset: usize,
    pub shape: Vec<usize>,
    /// In elements, per dimension; `None` when the tensor is contiguous (row-major).
    pub stride: Option<Vec<usize>>,
    /// Elements from `offset` to one past the last element (`numel` when contiguous).
    pub span: usize,
}

/// The callables and classes a state dict may name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildTensor,
    RebuildParameter,
    RebuildFromTypeV2,
    TensorClass,
    StorageType(Dtype),
}

/// The names a state dict may import; anything else is refused before it is used.
pub(super) fn global(module: &str, name: &str) -> Res<Global> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromTypeV2,
        ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => Global::TensorClass,
        ("torch", storage) => Global::StorageType(storage_dtype(storage).ok_or_else(|| {
            format!("refused: `torch.{storage}` is not a tensor storage type we read")
        })?),
        _ => {
            return Err(format!(
                "refused: the pickle imports `{module}.{name}`, which is not part of a PyTorch \
                 state dict (unpickling it could run code; nothing was run)"
            ))
        }
    })
}

fn storage_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "FloatStorage" => Dtype::F32,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "DoubleStorage" => Dtype::F64,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" => Dtype::U8,
        "BoolStorage" => Dtype::BOOL,
        _ => return None,
    })
}

fn uint(v: &Value, what: &str) -> Res<usize> {
    match v {
        Value::Int(i) => usize::try_from(*i).map_err(|_| format!("{what} is negative ({i})")),
        other => Err(format!("{what} is {}, not an int", other.kind())),
    }
}

fn ints(v: &Value, what: &str) -> Res<Vec<usize>> {
    match v {
        Value::Tuple(items, _) => items.iter().map(|x| uint(x, what)).collect(),
        other => Err(format!("{what} is {}, not a tuple", other.kind())),
    }
}

/// A persistent id: `('storage', torch.FloatStorage, key, location, numel[, view])`.
pub(super) fn storage(pid: Value) -> Res<Storage> {
    let Value::Tuple(items, _) = &pid else {
        return Err(format!("a persistent id is {}, not a tuple", pid.kind()));
    };
    let (Some(Value::Str(tag)), Some(Value::Global(Global::StorageType(dtype))), Some(key)) =
        (items.first(), items.get(1), items.get(2))
    else {
        return Err("a persistent id is not ('storage', torch.<Type>Storage, key, ...)".into());
    };
    if &**tag != "storage" || items.len() < 5 {
        return Err(format!("a persistent id tagged `{tag}` is not a storage"));
    }
    let key = match key {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("a storage key is {}", other.kind())),
    };
    let mut s = Storage {
        dtype: *dtype,
        key,
        numel: uint(&items[4], "a storage's size")?,
        view_offset: 0,
    };
    // The legacy format's views: (view_key, offset, view_size) into the root storage.
    if let Some(Value::Tuple(view, _)) = items.get(5) {
        if view.len() != 3 {
            return Err("a storage view is not (key, offset, size)".into());
        }
        let offset = uint(&view[1], "a storage view's offset")?;
        let size = uint(&view[2], "a storage view's size")?;
        if offset.checked_add(size).is_none_or(|end| end > s.numel) {
            return Err(format!(
                "a view of storage `{}` ends past the storage's {} elements",
                s.key, s.numel
            ));
        }
        s.view_offset = offset;
        s.numel = size;
    }
    Ok(s)
}

pub(super) fn reduce(callable: Value, args: Value) -> Res<Value> {
    let Value::Global(g) = callable else {
        return Err(format!("REDUCE calls {}, not a function", callable.kind()));
    };
    let Value::Tuple(args, _) = args else {
        return Err(format!("REDUCE with {} as arguments", args.kind()));
    };
    match g {
        Global::OrderedDict => ordered_dict(&args),
        Global::RebuildTensorV2 | Global::RebuildTensor => rebuild_tensor(&args),
        Global::RebuildParameter => match args.first() {
            Some(t @ Value::Tensor(_)) => Ok(t.clone()),
            _ => Err("_rebuild_parameter of something that is not a tensor".into()),
        },
        Global::RebuildFromTypeV2 => match &args[..] {
            [Value::Global(f), Value::Global(Global::TensorClass), Value::Tuple(inner, d), ..] => {
                reduce(Value::Global(*f), Value::Tuple(inner.clone(), *d))
            }
            _ => Err("_rebuild_from_type_v2 of something that is not a tensor".into()),
        },
        Global::TensorClass | Global::StorageType(_) => {
            Err("refused: the pickle constructs a tensor or storage class directly".into())
        }
    }
}

fn ordered_dict(args: &[Value]) -> Res<Value> {
    let mut pairs = Vec::new();
    if let Some(items) = args.first() {
        let items: &[Value] = match items {
            Value::List(items, _) => &items[..],
            Value::Tuple(items, _) => items,
            other => return Err(format!("OrderedDict of {}", other.kind())),
        };
        for item in items {
            match item {
                Value::Tuple(kv, _) if kv.len() == 2 => pairs.push((kv[0].clone(), kv[1].clone())),
                Value::List(kv, _) if kv.len() == 2 => pairs.push((kv[0].clone(), kv[1].clone())),
                _ => return Err("OrderedDict of items that are not pairs".into()),
            }
        }
    }
    let d = 1 + pairs
        .iter()
        .map(|(k, v)| k.depth().max(v.depth()))
        .max()
        .unwrap_or(0);
    Ok(Value::Dict(Rc::new(pairs), d))
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, ...)` (and the legacy `_rebuild_tensor`,
/// its first four arguments): tensors that lie inside their storage, contiguous or not (a
/// transposed or sliced view saved as is is read by striding, as torch.load does).
fn rebuild_tensor(args: &[Value]) -> Res<Value> {
    let [Value::Storage(storage), offset, size, stride, ..] = args else {
        return Err("_rebuild_tensor_v2 without (storage, offset, size, stride)".into());
    };
    let offset = uint(offset, "a tensor's storage offset")?;
    let shape = ints(size, "a tensor's size")?;
    let stride = ints(stride, "a tensor's stride")?;
    if stride.len() != shape.len() {
        return Err(format!(
            "a tensor's stride {stride:?} does not fit its size {shape:?}"
        ));
    }
    let overflow = || format!("a tensor's size {shape:?} with stride {stride:?} overflows");
    let mut expected = 1usize;
    let mut contiguous = true;
    // One past the largest element index the view reaches, from its first element.
    let mut span = 1usize;
    for (&n, &s) in shape.iter().zip(&stride).rev() {
        contiguous &= n <= 1 || s == expected;
        expected = expected.checked_mul(n).ok_or_else(overflow)?;
        let reach = n.saturating_sub(1).checked_mul(s).ok_or_else(overflow)?;
        span = span.checked_add(reach).ok_or_else(overflow)?;
    }
    let numel = expected;
    if !contiguous && numel > storage.numel {
        // Only an overlapping view (an expanded tensor, stride 0) has more elements than its
        // storage; refused so that the elements read stay bounded by the file's size.
        return Err(format!(
            "a tensor of size {shape:?} with stride {stride:?} has more elements than its \
             storage `{}` ({} elements), an expanded view; save it with `.contiguous()`",
            storage.key, storage.numel
        ));
    }
    let span = if numel == 0 {
        0
    } else if contiguous {
        numel
    } else {
        span
    };
    if offset
        .checked_add(span)
        .is_none_or(|end| end > storage.numel)
    {
        return Err(format!(
            "a tensor of size {shape:?} at offset {offset} lies past the end of storage `{}` \
             ({} elements)",
            storage.key, storage.numel
        ));
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: storage.clone(),
        offset,
        shape,
        stride: (!contiguous).then_some(stride),
        span,
    })))
}
