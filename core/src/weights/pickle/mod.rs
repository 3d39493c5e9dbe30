//! A restricted reader of the pickles `torch.save` writes for a state dict. A pickle is a
//! program: Python's `pickle.load` imports and calls whatever it names, which is how a `.bin`
//! file runs code. This reader runs nothing. It knows the few constructors a state dict is made
//! of (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and its relatives, the
//! `torch.*Storage` types) and refuses any other name as soon as the pickle mentions it, with
//! one line that says what and where. Storages stay references (key, dtype, element count); the
//! container (`torch.rs`) finds their bytes.
//!
//! Memory and time are bounded by the input: containers are shared, not copied, when the memo
//! hands them out again; the elements all containers gather are counted against a budget
//! proportional to the pickle's length; nesting is limited so that dropping a value cannot
//! overflow the stack.

mod state_dict;

use std::collections::HashMap;
use std::rc::Rc;

use state_dict::{global, reduce, storage, Global};
pub use state_dict::{Storage, TensorRef};

/// Deeper nesting than a state dict ever has (its tensors sit at depth 3 or 4).
const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug)]
enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as little-endian two's complement bytes (the legacy
    /// format's magic number).
    Long(Rc<[u8]>),
    /// A float (a state dict's floats are metadata; their value is never needed).
    Float,
    Str(Rc<str>),
    /// Bytes (likewise never needed).
    Bytes,
    Tuple(Rc<[Value]>, usize),
    /// Lists and dicts are shared, as in Python: the memo hands out the same one again, and a
    /// change copies it only while it is shared.
    List(Rc<Vec<Value>>, usize),
    Dict(Rc<Vec<(Value, Value)>>, usize),
    Global(Global),
    Storage(Rc<Storage>),
    Tensor(Rc<TensorRef>),
    Mark,
}

impl Value {
    fn depth(&self) -> usize {
        match self {
            Value::Tuple(_, d) | Value::List(_, d) | Value::Dict(_, d) => *d,
            _ => 0,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) | Value::Long(_) => "an int",
            Value::Float => "a float",
            Value::Str(_) => "a string",
            Value::Bytes => "bytes",
            Value::Tuple(..) => "a tuple",
            Value::List(..) => "a list",
            Value::Dict(..) => "a dict",
            Value::Global(_) => "a class or function",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
            Value::Mark => "a mark",
        }
    }
}

fn depth_of<'a>(items: impl Iterator<Item = &'a Value>) -> usize {
    1 + items.map(Value::depth).max().unwrap_or(0)
}

/// What a pickle holds once read.
pub enum Object {
    /// A dict whose values are all tensors, in the pickle's order.
    StateDict(Vec<(String, TensorRef)>),
    /// An integer (the legacy format's magic number and protocol version), little-endian.
    Int(Vec<u8>),
    /// A list of strings (the legacy format's storage keys).
    Strings(Vec<String>),
    /// A dict without tensors: its flags (the legacy format's system info, `little_endian`).
    Info(HashMap<String, bool>),
    /// Anything else the restricted reader could build.
    Other,
}

type Res<T> = std::result::Result<T, String>;

/// Reads one pickle from `data[*pos..]`, leaving `*pos` after its STOP.
pub fn read(data: &[u8], pos: &mut usize) -> Res<Object> {
    let mut m = Machine {
        data,
        pos: *pos,
        stack: Vec::new(),
        memo: HashMap::new(),
        budget: 16 * data.len().saturating_sub(*pos) + 4096,
    };
    let top = m.run()?;
    *pos = m.pos;
    to_object(top)
}

fn to_object(top: Value) -> Res<Object> {
    Ok(match top {
        Value::Int(i) => Object::Int(i.to_le_bytes().to_vec()),
        Value::Long(bytes) => Object::Int(bytes.to_vec()),
        Value::List(items, _) => Object::Strings(
            items
                .iter()
                .map(|v| match v {
                    Value::Str(s) => Ok(s.to_string()),
                    other => Err(format!("a storage key is {}, not a string", other.kind())),
                })
                .collect::<Res<_>>()?,
        ),
        Value::Dict(pairs, _) if pairs.iter().all(|(_, v)| !matches!(v, Value::Tensor(_))) => {
            let flags = pairs.iter().filter_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Bool(b)) => Some((k.to_string(), *b)),
                _ => None,
            });
            Object::Info(flags.collect())
        }
        Value::Dict(pairs, _) => {
            let mut out = Vec::with_capacity(pairs.len());
            for (k, v) in pairs.iter() {
                let Value::Str(k) = k else {
                    return Err(format!("a state-dict key is {}, not a string", k.kind()));
                };
                let Value::Tensor(t) = v else {
                    return Err(format!(
                        "entry `{k}` is {}, not a tensor (only state dicts of tensors are read)",
                        v.kind()
                    ));
                };
                out.push((k.to_string(), TensorRef::clone(t)));
            }
            Object::StateDict(out)
        }
        _ => Object::Other,
    })
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    /// Elements that containers may still gather (see the module's doc).
    budget: usize,
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                format!(
                    "the pickle ends inside a value at byte {} (it is truncated)",
                    self.pos
                )
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    fn u8(&mut self) -> Res<u8> {
        Ok(self.take(1)?[0])
    }
    fn le(&mut self, n: usize) -> Res<u64> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }
    fn line(&mut self) -> Res<&'a str> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("the pickle ends inside a line (it is truncated)")?;
        let line = self.take(n + 1)?;
        std::str::from_utf8(&line[..n]).map_err(|_| "a pickle line is not UTF-8".to_string())
    }
    fn len(&mut self, n: usize) -> Res<usize> {
        let v = self.le(n)?;
        usize::try_from(v).map_err(|_| format!("a length of {v} bytes"))
    }
    fn text(&mut self, n: usize) -> Res<Value> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|_| "a pickle string is not UTF-8".to_string())?;
        Ok(Value::Str(Rc::from(s)))
    }
    fn pop(&mut self) -> Res<Value> {
        self.stack
            .pop()
            .ok_or_else(|| "the pickle pops an empty stack (it is malformed)".to_string())
    }
    fn pop_mark(&mut self) -> Res<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("the pickle has no MARK where one is needed (it is malformed)")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        self.spend(items.len())?;
        Ok(items)
    }
    fn spend(&mut self, n: usize) -> Res<()> {
        self.budget = self.budget.checked_sub(n).ok_or(
            "the pickle builds far more values than its size explains (a decompression bomb?)",
        )?;
        Ok(())
    }
    fn push(&mut self, v: Value) -> Res<()> {
        if v.depth() > MAX_DEPTH {
            return Err(format!("the pickle nests values deeper than {MAX_DEPTH}"));
        }
        self.stack.push(v);
        Ok(())
    }
    fn memo_get(&mut self, key: u32) -> Res<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("the pickle reads memo entry {key}, never stored"))?;
        self.spend(1)?;
        self.push(v)
    }
    fn memo_put(&mut self, key: u32) -> Res<()> {
        let top = self
            .stack
            .last()
            .ok_or("the pickle memoizes an empty stack")?
            .clone();
        self.memo.insert(key, top);
        Ok(())
    }

    fn run(&mut self) -> Res<Value> {
        loop {
            let at = self.pos;
            let op = self
                .u8()
                .map_err(|_| "the pickle ends before its STOP (it is truncated)".to_string())?;
            if op == b'.' {
                let top = self.pop()?;
                return Ok(top);
            }
            self.step(op)
                .map_err(|e| format!("{e} (pickle opcode 0x{op:02x} at byte {at})"))?;
        }
    }

    /// One opcode; `Err` for one a state dict does not use.
    fn step(&mut self, op: u8) -> Res<()> {
        if self.scalar(op)? || self.container(op)? || self.memo_or_call(op)? {
            Ok(())
        } else {
            Err(refused_opcode(op))
        }
    }

    /// Framing, stack handling, and the values that hold no others: ints, floats, strings.
    fn scalar(&mut self, op: u8) -> Res<bool> {
        match op {
            0x80 => {
                let proto = self.u8()?;
                if proto > 5 {
                    return Err(format!("unknown pickle protocol {proto}"));
                }
            }
            0x95 => {
                self.take(8)?; // FRAME: a length hint only
            }
            b'(' => self.stack.push(Value::Mark),
            b'0' => drop(self.pop()?),
            b'1' => drop(self.pop_mark()?),
            b'2' => {
                let top = self.stack.last().ok_or("DUP of an empty stack")?.clone();
                self.push(top)?;
            }
            b'N' => self.push(Value::None)?,
            0x88 => self.push(Value::Bool(true))?,
            0x89 => self.push(Value::Bool(false))?,
            b'J' => {
                let v = self.le(4)? as u32 as i32;
                self.push(Value::Int(v.into()))?;
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Value::Int(v.into()))?;
            }
            b'M' => {
                let v = self.le(2)?;
                self.push(Value::Int(v as i64))?;
            }
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    self.u8()? as usize
                } else {
                    self.len(4)?
                };
                let bytes = self.take(n)?;
                self.push(long(bytes))?;
            }
            b'I' | b'L' => {
                let line = self.line()?.trim_end_matches('L');
                let v = match line {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    _ => Value::Int(line.parse().map_err(|_| format!("bad int `{line}`"))?),
                };
                self.push(v)?;
            }
            b'G' => {
                self.take(8)?;
                self.push(Value::Float)?;
            }
            b'F' => {
                let line = self.line()?;
                line.parse::<f64>()
                    .map_err(|_| format!("bad float `{line}`"))?;
                self.push(Value::Float)?;
            }
            b'X' | b'T' => {
                let n = self.len(4)?;
                let v = self.text(n)?;
                self.push(v)?;
            }
            0x8c | b'U' => {
                let n = self.u8()? as usize;
                let v = self.text(n)?;
                self.push(v)?;
            }
            0x8d => {
                let n = self.len(8)?;
                let v = self.text(n)?;
                self.push(v)?;
            }
            b'B' | b'C' | 0x8e => {
                let n = match op {
                    b'C' => self.u8()? as usize,
                    b'B' => self.len(4)?,
                    _ => self.len(8)?,
                };
                self.take(n)?;
                self.push(Value::Bytes)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Tuples, lists and dicts.
    fn container(&mut self, op: u8) -> Res<bool> {
        match op {
            b')' => self.push(Value::Tuple(Rc::from(Vec::new()), 1))?,
            b't' => {
                let items = self.pop_mark()?;
                self.push(tuple(items))?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let len = self.stack.len();
                if len < n
                    || self.stack[len - n..]
                        .iter()
                        .any(|v| matches!(v, Value::Mark))
                {
                    return Err("a TUPLE of values the stack does not hold".into());
                }
                self.spend(n)?;
                let items = self.stack.split_off(len - n);
                self.push(tuple(items))?;
            }
            b']' => self.push(Value::List(Rc::default(), 1))?,
            b'l' => {
                let items = self.pop_mark()?;
                let d = depth_of(items.iter());
                self.push(Value::List(Rc::new(items), d))?;
            }
            b'a' => {
                let v = self.pop()?;
                self.spend(1)?;
                self.extend_list(vec![v])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend_list(items)?;
            }
            b'}' => self.push(Value::Dict(Rc::default(), 1))?,
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Value::Dict(Rc::default(), 1))?;
                self.extend_dict(items)?;
            }
            b's' => {
                let v = self.pop()?;
                let k = self.pop()?;
                self.spend(1)?;
                self.extend_dict(vec![k, v])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.extend_dict(items)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The memo, the names a pickle imports, storages and the calls that build tensors.
    fn memo_or_call(&mut self, op: u8) -> Res<bool> {
        match op {
            b'h' => {
                let k = self.u8()?;
                self.memo_get(k.into())?;
            }
            b'j' => {
                let k = self.le(4)? as u32;
                self.memo_get(k)?;
            }
            b'g' => {
                let line = self.line()?;
                let k = line.parse().map_err(|_| format!("bad memo key `{line}`"))?;
                self.memo_get(k)?;
            }
            b'q' => {
                let k = self.u8()?;
                self.memo_put(k.into())?;
            }
            b'r' => {
                let k = self.le(4)? as u32;
                self.memo_put(k)?;
            }
            b'p' => {
                let line = self.line()?;
                let k = line.parse().map_err(|_| format!("bad memo key `{line}`"))?;
                self.memo_put(k)?;
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.memo_put(k)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push(Value::Global(global(module, name)?))?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                    return Err("STACK_GLOBAL of values that are not strings".into());
                };
                self.push(Value::Global(global(module, name)?))?;
            }
            b'Q' => {
                let pid = self.pop()?;
                self.push(Value::Storage(Rc::new(storage(pid)?)))?;
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = reduce(callable, args)?;
                self.push(v)?;
            }
            b'b' => {
                let _state = self.pop()?;
                // An OrderedDict's attributes (`_metadata`: versions of each module's
                // parameters) and a tensor's Python attributes: nothing a loader needs.
                match self.stack.last() {
                    Some(Value::Dict(..) | Value::Tensor(_)) => {}
                    Some(other) => return Err(format!("BUILD on {}", other.kind())),
                    None => return Err("BUILD on an empty stack".into()),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The cost of changing the list or dict on top of the stack: copying it while the memo
    /// (or another value) shares it.
    fn copy_cost(&mut self) -> Res<()> {
        let shared = match self.stack.last() {
            Some(Value::List(v, _)) if Rc::strong_count(v) > 1 => v.len(),
            Some(Value::Dict(v, _)) if Rc::strong_count(v) > 1 => v.len(),
            _ => 0,
        };
        self.spend(shared)
    }

    fn extend_list(&mut self, items: Vec<Value>) -> Res<()> {
        self.copy_cost()?;
        match self.stack.last_mut() {
            Some(Value::List(list, depth)) => {
                *depth = (*depth).max(depth_of(items.iter()));
                if *depth > MAX_DEPTH {
                    return Err(format!("the pickle nests values deeper than {MAX_DEPTH}"));
                }
                Rc::make_mut(list).extend(items);
                Ok(())
            }
            _ => Err("APPEND to something that is not a list".into()),
        }
    }

    fn extend_dict(&mut self, items: Vec<Value>) -> Res<()> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with a key but no value".into());
        }
        self.copy_cost()?;
        match self.stack.last_mut() {
            Some(Value::Dict(pairs, depth)) => {
                *depth = (*depth).max(depth_of(items.iter()));
                if *depth > MAX_DEPTH {
                    return Err(format!("the pickle nests values deeper than {MAX_DEPTH}"));
                }
                let pairs = Rc::make_mut(pairs);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(())
            }
            _ => Err("SETITEM on something that is not a dict".into()),
        }
    }
}

fn tuple(items: Vec<Value>) -> Value {
    let d = depth_of(items.iter());
    Value::Tuple(Rc::from(items), d)
}

/// LONG1/LONG4: a little-endian two's complement integer of any width.
fn long(bytes: &[u8]) -> Value {
    if bytes.len() <= 8 {
        let negative = bytes.last().is_some_and(|b| b & 0x80 != 0);
        let mut full = [if negative { 0xff } else { 0 }; 8];
        full[..bytes.len()].copy_from_slice(bytes);
        Value::Int(i64::from_le_bytes(full))
    } else {
        Value::Long(Rc::from(bytes))
    }
}

fn refused_opcode(op: u8) -> String {
    let what = match op {
        b'i' | b'o' | 0x81 | 0x92 => "creates an object of a class (INST/OBJ/NEWOBJ)",
        0x82..=0x84 => "uses the extension registry (EXT)",
        b'P' => "uses a text persistent id",
        0x8f..=0x91 => "builds a set",
        0x96..=0x98 => "uses out-of-band buffers",
        _ => "is not a pickle opcode a state dict uses",
    };
    format!("refused: the pickle {what}; only PyTorch state dicts are read")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8]) -> Res<Object> {
        read(bytes, &mut 0)
    }

    #[test]
    fn refuses_os_system_before_calling_it() {
        // pickle.dumps of an object whose __reduce__ is (os.system, ('echo hi',)), protocol 2.
        let p = b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00echo hiq\x01\x85q\x02Rq\x03.";
        let err = read_all(p).err().unwrap();
        assert!(
            err.contains("`posix.system`") && err.contains("nothing was run"),
            "{err}"
        );
        let p4 = b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93.";
        assert!(read_all(p4).err().unwrap().contains("`os.system`"));
    }

    #[test]
    fn bombs_and_deep_nesting_are_bounded() {
        // ] q0 ( h0 h0 e q0 ...: a list appended to itself, doubling each round in Python; here
        // it is shared, and nesting stops it.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..100 {
            p.extend_from_slice(b"(h\x00h\x00eq\x00");
        }
        p.push(b'.');
        assert!(read_all(&p).err().unwrap().contains("deeper"));
        // N a q0 ...: a list memoized again after every append, so that each append copies it:
        // quadratic work, which the budget stops.
        let mut p = b"\x80\x02]q\x00".to_vec();
        for _ in 0..3000 {
            p.extend_from_slice(b"Naq\x00");
        }
        p.push(b'.');
        assert!(read_all(&p).err().unwrap().contains("bomb"));
        let mut deep = b"\x80\x02N".to_vec();
        deep.extend(std::iter::repeat_n(0x85u8, 100_000));
        deep.push(b'.');
        assert!(read_all(&deep).err().unwrap().contains("deeper"));
    }

    #[test]
    fn truncated_pickles_are_reported() {
        let err = read_all(b"\x80\x02}q\x00X\x10\x00\x00\x00ab")
            .err()
            .unwrap();
        assert!(err.contains("truncated"), "{err}");
        assert!(read_all(b"\x80\x02}").err().unwrap().contains("truncated"));
    }

    #[test]
    fn negative_and_wide_ints() {
        let Object::Int(b) = read_all(b"\x8a\x01\xff.").unwrap() else {
            panic!()
        };
        assert_eq!(b, (-1i64).to_le_bytes());
        let Object::Int(b) =
            read_all(b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.").unwrap()
        else {
            panic!()
        };
        assert_eq!(b.len(), 10);
    }
}
