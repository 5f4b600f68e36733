//! What is asked: tasks and their items, read from OLMES request files, kiln's JSONL
//! formats, MMLU's Arrow files, HumanEval-style code problems and text documents, plus the
//! prompt tasks of `kiln finetune eval` and `kiln data prefs` (a prompt and a checkable
//! answer per line).

pub mod code_item;
pub mod code_tasks;
pub mod gen_item;
pub mod gen_jsonl;
pub mod mc_item;
pub mod mc_jsonl;
pub mod mmlu;
pub mod olmes;
pub mod prompt_items;
pub mod rolling;
pub mod task;

pub use task::{available_tasks, load_task, Task, TaskItems};
