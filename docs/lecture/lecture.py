"""The lecture on recurrent networks, cell by cell (docs/lecture/build.py turns it into lecture.ipynb)."""

CELLS = [
("md", r"""
# Recurrent neural networks (RNNs)

Recurrent neural networks are built for **sequences**: text, speech, sensor readings, prices over time.
Like much of deep learning they are older than they look. They were introduced in the 1980s, but only
showed what they can do in recent years, once we had the computing power, the data, and the *long
short-term memory* (LSTM), invented in the 1990s.

An RNN carries an internal memory from one step to the next. That lets it keep what mattered in the
input so far, which is exactly what you need to predict what comes next. For years this made RNNs the
default choice for sequential data: compared with other algorithms, they build a much richer picture of
a sequence and its context.

**How to use this notebook.** Run the cells in order (Shift+Enter). Everything runs on a laptop CPU;
the whole notebook runs in a minute or two. The code uses `rnnlab`, a library that implements RNNs, LSTMs
and GRUs in NumPy with hand-written backpropagation. The demos also save their plots as PNG files in
`lecture_figures/`, ready for slides.
"""),
("code", r"""
import numpy as np
import rnnlab
from rnnlab import demos, figures

np.set_printoptions(precision=3, suppress=True)
FOLDER = "lecture_figures"   # where the demos save their plots (PNG)
"""),
("md", r"""
## How do RNNs work?

To understand RNNs we start from *feed-forward* networks, the subject of the previous lecture. In a
feed-forward network, leaving backpropagation aside, information flows one way only: from the input
to the output.

So the network has no memory of the inputs it has seen, and cannot anticipate what might follow them.
A feed-forward network cannot learn anything sequential: apart from what training taught it, it
remembers nothing about the past.

In an RNN, information goes round a loop. When the network makes a decision, it takes into account
the current input *and* what it has learnt from the inputs that came before. The figure shows the two
side by side: on the right, the hidden state $h_t$ is fed back as an input to the next step.
"""),
("code", r"""
figures.feedforward_vs_recurrent()
"""),
("md", r"""
An RNN's memory is usually short-term; built from LSTM layers, it can hold on to things for much
longer (more on that at the end).

As a formula: at each step $t$ the RNN reads the input $x_t$ and its previous state $h_{t-1}$, and
computes a new state:

$$h_t = \tanh\left(W_{ih}\,x_t + b_{ih} + W_{hh}\,h_{t-1} + b_{hh}\right), \qquad y_t = W_{hy}\,h_t + b_y$$

$W_{ih}$ weighs the present, $W_{hh}$ the recent past, and they are **the same matrices at every
step**. The state $h_t$ is the network's memory: a vector of numbers summing up everything read so far.

The next cell computes this formula by hand, with a plain `for` loop in NumPy, and checks it against
`rnnlab`'s RNN.
"""),
("code", r"""
rng = np.random.default_rng(0)
rnn = rnnlab.RNN(input_size=3, hidden_size=4, dtype=np.float64, rng=rng)
x = rng.normal(size=(1, 5, 3))        # one sequence: B=1, T=5 steps, D=3 numbers per step
y, h_last = rnn(x)                    # y holds the state h_t of every step, shape (1, 5, 4)

W_ih, W_hh = rnn.weight_ih_l0.data, rnn.weight_hh_l0.data
b = rnn.bias_ih_l0.data + rnn.bias_hh_l0.data
h = np.zeros(4)                       # the memory starts empty
for t in range(5):
    h = np.tanh(W_ih @ x[0, t] + W_hh @ h + b)   # the present x_t and the past h_{t-1}
    print(f"t={t}  h_t = {h}")
print("same as rnnlab's last state:", np.allclose(h, y[0, -1]))
"""),
("md", r"""
### The "neurone" example

Another way to see an RNN's memory is an example. Give an ordinary feed-forward network the word
"neurone" (Italian for *neuron*), one character at a time, and ask it at every step to guess the next
character. By the time it reaches "u" it has already forgotten the "n" and the "e", so it has almost
no way of knowing what comes next.

An RNN can remember those characters, thanks to its internal memory. It has two inputs: the data of
the present, and the recent past. That matters, because the order of a sequence carries much of the
information about what follows.

Let's try it. `rnnlab` trains both networks (a few seconds) on ten Italian words that share many
letters: *neurone, nebbia, neve, nero, nuora, uno, treno, tenue, rete, ruota*. Then both read
"neurone".
"""),
("code", r"""
from rnnlab import plots
from rnnlab.experiments import run_experiment

neurone = run_experiment("neurone")   # = rnnlab experiment neurone
print(neurone.table)
plots.plot_neurone(neurone.rows)
"""),
("md", r"""
No network can beat its theoretical limit. Seeing only a "u", you cannot tell whether it is the "u"
of "neurone", "uno", "nuora", "tenue" or "ruota"; remembering "neu", you know an "r" comes next. Memory is no
magic, though: after "ne" the word may be *neurone*, *nebbia*, *neve* or *nero*, and the best anyone
can do is give the "u" a probability of 1/4. The lines in the chart are those two limits (dashed: the
current letter only; solid: the whole prefix), and the bars show how close each network gets.

We can also look inside both networks while they read. The page below shows the ten words, one letter
at a time: under each letter, the probability each network gives to the letter that really comes next
(darker means more confident). Look at the "u" of "neurone": the feed-forward network hesitates, the
RNN does not. The page is interactive: hover over the letters at the top to see the RNN's five most
likely next letters.
"""),
("code", r"""
page = rnnlab.explore(neurone=True)
page
"""),
("md", r"""
A feed-forward network, like most deep-learning models, applies a weight matrix to its inputs and
produces an output. An RNN applies weights both to the current input ($W_{ih}$) and to the earlier
ones, through the state ($W_{hh}$). And it adjusts those weights by gradient descent, with gradients
computed by *backpropagation through time* (BPTT), coming up shortly.

`page.save("neurone.html")` writes the page to a file that opens in any browser, offline.
"""),
("md", r"""
## Types of RNN

Depending on how many inputs and outputs there are, RNNs come in four types: *one-to-one*,
*one-to-many*, *many-to-one* and *many-to-many*.
"""),
("code", r"""
figures.four_kinds()
"""),
("md", r"""
- **One-to-one**: one input, one output, no sequence at all. This is the plain feed-forward network,
  an image classifier for instance.
- **One-to-many**: a single input, a sequence out. A caption written from a picture, a melody from its
  first note, a word from its first letter.
- **Many-to-one**: a sequence in, a single answer at the end. Is this review positive or negative?
  What is the sum of the two marked numbers in this long sequence?
- **Many-to-many**: a sequence in, a sequence out. Either *aligned*, one output per input (the next
  character of "neurone" at every step), or *encoder-decoder* when the lengths differ, as in
  translating a sentence.

In `rnnlab` each type is a model. Look at the array shapes: `B` is the number of examples, `T` the
length of the sequence, `D` the features of each step.
"""),
("code", r"""
from rnnlab.models import ManyToMany, ManyToOne, OneToOne

B, T, D = 2, 7, 3
x_single = np.zeros((B, D), np.float32)           # one vector per example
x_sequence = np.zeros((B, T, D), np.float32)      # one sequence per example
print("one-to-one   ", OneToOne(D, 16, 5)(x_single).shape)             # (B, 5): one answer
print("many-to-one  ", ManyToOne("lstm", D, 16, 5)(x_sequence).shape)  # (B, 5): one answer, at the end
print("many-to-many ", ManyToMany("lstm", D, 16, 5)(x_sequence).shape) # (B, T, 5): one at every step
"""),
("md", r"""
One-to-many is the least obvious: how can a network write a whole sequence from a single input? The
input sets the initial state $h_0$; from then on, at every step, the network is fed what it has just
produced and decides on the next element. The demo trains a small network that is given only the
first letter of a word and writes the whole word, one letter at a time.
"""),
("code", r"""
one_to_many = demos.one_to_many(out=FOLDER, formats=("png",))
one_to_many.figure
"""),
("md", r"""
## BPTT

To understand *backpropagation through time* (BPTT), we first recall forward propagation and
backpropagation.

In a neural network, *forward propagation* computes the model's output, which we compare with the
correct one: the difference is the error, measured by a cost function (the *loss*).
*Backpropagation* computes the gradient of that loss with respect to the network's weights: it walks
back through the network, layer by layer, and finds the partial derivative of the error with respect
to every weight.

Those derivatives feed *gradient descent*, an algorithm that minimises a function step by step: it
moves each weight a little in the direction that lowers the error. That is how the model's weights
change during training.

BPTT is nothing more than backpropagation on an "unrolled" RNN. Unrolling is a way of thinking about,
and drawing, what happens inside the network. Most of the time the library computes the gradients for
you; but you need to know how it does it to deal with the problems that show up in practice.

We can think of an RNN as a chain of neural networks, one per step, each handing its state to the
next. The figure shows an RNN unrolled over the word "neurone". There are no loops any more: every
time step is drawn on its own, with information passed from one step to the next. It also shows why an
RNN can be seen as a sequence of neural networks.
"""),
("code", r"""
figures.unrolled("neurone")
"""),
("md", r"""
BPTT needs the unrolled picture because the error at one time step depends on the steps before it.
The total error is the sum of the errors at every step, $L = \sum_t L_t$. BPTT sends the error back
from the last step to the first, through every step in between, which gives each step's contribution;
and since $W_{hh}$ is the same at every step, its gradient is the **sum** of all those contributions.
The gradient that travels from step $t$ back to the state $h_k$ of an earlier step goes through a chain
of derivatives:

$$\frac{\partial L_t}{\partial h_k} = \frac{\partial L_t}{\partial h_t}\;\prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}},
\qquad \frac{\partial h_j}{\partial h_{j-1}} = \mathrm{diag}\!\left(1 - h_j^2\right) W_{hh}.$$

Keep that product in mind: it explains the problems of the next section.

A hand-written gradient can always be checked: nudge one weight by a tiny amount and see how much the
error changes (finite differences). `rnnlab`'s BPTT must give the same number.
"""),
("code", r"""
rng = np.random.default_rng(1)
rnn = rnnlab.RNN(input_size=2, hidden_size=3, dtype=np.float64, rng=rng)
x = rng.normal(size=(1, 6, 2))                  # one sequence of T=6 steps

def error():
    y, _ = rnn(x)
    return 0.5 * np.sum(y ** 2)                 # any error that depends on every step will do

y, _ = rnn(x)
rnn.backward(y)                                 # BPTT: dL/dy = y, back through every step
bptt = rnn.weight_hh_l0.grad[0, 1]

eps = 1e-6
W = rnn.weight_hh_l0.data
W[0, 1] += eps; up = error()
W[0, 1] -= 2 * eps; down = error()
W[0, 1] += eps
print(f"BPTT:               {bptt:.10f}")
print(f"finite differences: {(up - down) / (2 * eps):.10f}")
"""),
("md", r"""
Note, finally, that BPTT gets expensive when there are many time steps: to go backwards you must have
kept the state of every step, so memory and time grow with the length $T$ of the sequence. On long
sequences we therefore use **truncated BPTT**: cut the sequence into chunks of $k$ steps, carry the
state from one chunk to the next, but send the gradient back at most $k$ steps. The cost of each
update stays flat, at the price of not seeing dependencies longer than $k$. The demo measures time and
memory both ways.
"""),
("code", r"""
cost = demos.bptt_cost(lengths=(50, 100, 200, 400), window=50, hidden=64, out=FOLDER, formats=("png",))
cost.figure
"""),
("md", r"""
## Common problems with RNNs

RNNs have two main problems. To understand them, recall what a gradient is.

The gradient is the vector of partial derivatives of a function with respect to its inputs: it
measures how much the function's output changes when its inputs change a little.

It is also the slope of the function. The larger the gradient, the steeper the slope and the faster a
model can learn; if the slope is zero, the model stops learning. Here the gradient measures how the
error changes as all the weights change.

Back to the product in BPTT: each step back multiplies the gradient by
$\mathrm{diag}(1 - h_j^2)\,W_{hh}$. After $n$ steps the factor is a product of $n$ matrices. If they
tend to stretch vectors, the product grows exponentially; if they tend to shrink them, it dies away
exponentially. One number makes the point:
"""),
("code", r"""
for factor in (0.9, 1.0, 1.1):
    print(f"{factor} multiplied by itself 50 times: {factor ** 50:.3g}")
"""),
("md", r"""
### Exploding gradients

*Exploding gradients* happen when the gradient grows out of all proportion as it travels back in
time: the algorithm then gives the weights enormous updates, the error shoots off towards infinity and
training breaks down (`inf` and `nan` appear). The fix is to **cap** the gradient: *gradient clipping*.
When the gradient's norm exceeds a threshold, it is scaled back down to the threshold, keeping its
direction.

The demo trains the same RNN twice, with $W_{hh}$ set to twice an orthogonal matrix (so it stretches
vectors): once without clipping, once with it.
"""),
("code", r"""
exploding = demos.run_exploding(steps=600, out=FOLDER, formats=("png",))   # steps=2000 for a full training run
exploding.figures["exploding_clipping"]   # FOLDER also holds exploding_flow_heatmap.png
"""),
("md", r"""
### Vanishing gradients

*Vanishing gradients* happen when the gradient becomes too small: the model stops learning, or takes
far too long to get anywhere. In an RNN this happens going back in time: the signal that reaches
distant steps is so weak that the network cannot connect an output to an input many steps earlier, so
it never learns long-range dependencies.

The demo takes a freshly initialised RNN, GRU and LSTM, has them read the same text, and measures how
much of the last step's gradient reaches each earlier step.
"""),
("code", r"""
vanishing = demos.run_vanishing(seq_len=60, hidden=32, batch=16, out=FOLDER, formats=("png",))
vanishing.figure
"""),
("md", r"""
## RNNs and LSTMs

*Long short-term memory networks* (LSTMs) extend the memory of RNNs, so that they can learn from
events separated by long stretches of time.

An LSTM gives the data "weights" that help the network let new information in, forget it, or give it
enough importance to affect the output.

LSTM units are the building blocks of the layers of a particular kind of RNN, called, naturally, an
LSTM network.

LSTMs let an RNN remember its inputs over long periods because they keep information in a memory, the
**cell** $c_t$, that they can read from, write to and erase.

This memory is controlled by *gates* that decide whether to store a piece of information, depending on
how important it is judged to be. Importance is set by weights, which the algorithm learns: over time
the network learns which information matters and which does not.

An LSTM cell has three gates: *input*, *forget* and *output*. They decide whether to let a new input
in (input gate), to delete information that no longer matters (forget gate), or to let it shape the
output at the current step (output gate).
"""),
("code", r"""
figures.lstm_cell()
"""),
("md", r"""
The equations are on the right of the figure, in PyTorch's names: $W_{ii}$ weighs the input in gate
$i$, $W_{hi}$ the previous state, and so on; $\sigma$ is the sigmoid and $\odot$ the element-wise
product. The heart of the cell is the last two lines, written here with the time index (the
drawing calls $c_t$ c′ and $c_{t-1}$ c):

$$c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)$$

The forget gate $f_t$ decides how much of the old memory $c_{t-1}$ to keep, the input gate $i_t$ how
much of the new candidate $g_t$ to write, and the output gate $o_t$ how much of the memory to show the
outside world, in $h_t$.

The gates of an LSTM use a sigmoid, so their output lies between zero (gate closed) and one (gate
open). Let's train a small LSTM on the ten words from before (a few seconds) and watch its gates as it
reads "neurone".
"""),
("code", r"""
from rnnlab import diagnostics, plots
from rnnlab.data.tasks import neurone_data
from rnnlab.optim import Adam
from rnnlab.train import optimize

words = neurone_data()                  # the ten words, one letter at a time
V = len(words.vocab)
lstm = ManyToMany("lstm", 8, 32, V, input_vocab=V, rng=np.random.default_rng(0))

def one_step(step):
    logits = lstm(words.x, words.lengths)
    loss, d_logits = rnnlab.cross_entropy(logits, words.y, words.mask)
    lstm.backward(d_logits)             # BPTT
    return loss

history = optimize(lstm.parameters(), one_step, Adam(lstm.parameters(), lr=1e-2), steps=400)
with rnnlab.no_grad():
    right = (lstm(words.x, words.lengths).argmax(-1) == words.y)[words.mask].mean()
print(f"loss: {history[0]['loss']:.2f} at the start, {history[-1]['loss']:.2f} after 400 steps")
print(f"next letters guessed right: {right:.0%}")

ids = words.encode("^neurone")[None, :]
trace = diagnostics.gate_trace(lstm, lstm.inputs.embedding(ids))
plots.plot_gates("^neurone", {k: v[:, 0] for k, v in trace.items()}, names=["i", "f", "o", "c"], units=12,
                 title="the LSTM's gates reading '^neurone' (12 of 32 units)")
"""),
("md", r"""
The rows `i`, `f` and `o` stay between 0 and 1, as the sigmoid promises; the cell `c` is free to build
up positive and negative values.

These cells ease the vanishing-gradient problem. Along the cell, the gradient does not pass through a
`tanh` at every step; it is only multiplied by the forget gate $f_t$ (because
$c_t = f_t\,c_{t-1} + \dots$). As long as the forget gate stays close to 1, the gradient travels far,
and training can pick up long dependencies. We measured it a moment ago:
"""),
("code", r"""
for name in ("RNN", "LSTM"):
    verdict = vanishing.verdicts[name]
    print(f"{name:4}: the first step receives {verdict.start_ratio:.1g} of the last step's gradient")
"""),
("md", r"""
## Exercises

1. Draw `figures.unrolled("ciao")`. How many times does $W_{hh}$ appear in the unrolled network? How
   many *different* matrices does the network learn?
2. In the cell that computes the RNN by hand, set `W_hh = np.zeros((4, 4))` before the loop. What kind
   of network is left? What does it still know about earlier steps?
3. One-to-one, one-to-many, many-to-one or many-to-many? (a) translating a sentence from Italian to
   English; (b) deciding whether an e-mail is spam; (c) writing a caption for a photo; (d) predicting
   the next character after each letter of a word.
4. A gradient is multiplied by 0.8 at every step back. How much of it is left after 20 steps? After
   100? After how many steps does it fall below one thousandth?
5. With BPTT truncated to $k = 20$ steps, can the network learn that the letter it read 50 steps ago
   decides the next one? Does the state still carry information from 50 steps ago?
6. In the vanishing-gradient demo, the LSTM with PyTorch's initialisation (forget-gate bias near 0)
   behaves like the RNN. Why does a forget-gate bias of 1 help?
7. Run `demos.run_exploding(steps=600, out=FOLDER, clip=10.0)`: does clipping still work? And with
   `gain=1.0` (an orthogonal $W_{hh}$, which does not stretch vectors)?
"""),
("md", r"""
<details>
<summary><b>Solutions</b> (click to open)</summary>

1. The figure labels $W_{hh}$ three times, from $h_1$ to $h_4$; in fact the matrix is used at every
   step, from $h_0$ to $h_1$ as well: four times for four letters. But it is always **the same** matrix
   (the figure's $W_{xh}$ is our $W_{ih}$):
   the network learns one $W_{hh}$, one $W_{ih}$ and one $W_{hy}$, shared by every step. That is why
   an RNN can read sequences of any length.
2. With $W_{hh} = 0$ the state becomes $h_t = \tanh(W_{ih} x_t + b)$: it depends on the current input
   only. It is a feed-forward (one-to-one) network applied at every step, with no memory of earlier
   steps: exactly the network that, in "neurone", cannot tell what follows the "u". The hidden cell
   below checks it.
3. (a) many-to-many, encoder-decoder (the two sentences differ in length); (b) many-to-one;
   (c) one-to-many; (d) aligned many-to-many.
4. $0.8^{20} \approx 0.012$ and $0.8^{100} \approx 2 \cdot 10^{-10}$. It falls below $10^{-3}$ once
   $0.8^n < 10^{-3}$, that is $n > \ln(10^{-3}) / \ln(0.8) \approx 31$: from step 31 on.
5. No: the gradient goes back at most 20 steps, so no weight update ever links today's error to the
   letter of 50 steps ago. The state, on the other hand, is carried from chunk to chunk, so it *can*
   hold that information, but the network never gets the signal that would teach it to keep it.
6. Along the cell the gradient is multiplied by $f_t$ at every step. With bias 0, at the start
   $f \approx \sigma(0) = 0.5$, and after 50 steps about $0.5^{50} \approx 10^{-15}$ is left; with
   bias 1, $f \approx \sigma(1) \approx 0.73$ (the demo prints the average it measures), so the signal fades
   much more slowly, and training can learn to open the gate all the way to 1.
7. At threshold 10, clipping still keeps the `nan`s away, but that is not enough: the steps stay too
   long and the error, instead of falling, stays huge. The threshold has to be small compared with the
   typical gradient norms. With `gain=1.0` the orthogonal matrix keeps the length of vectors and
   `tanh` can only shorten them, so the gradient does not grow going back: the demo says *healthy*,
   training without clipping no longer explodes, and the network learns.
</details>
"""),
("hidden", r"""
# Solution to exercise 2: with W_hh = 0 the state depends on the current step's input only
rng = np.random.default_rng(0)
rnn = rnnlab.RNN(input_size=3, hidden_size=4, dtype=np.float64, rng=rng)
rnn.weight_hh_l0.data[...] = 0
x = rng.normal(size=(1, 5, 3))
y, _ = rnn(x)
x_changed = x.copy()
x_changed[0, 0] += 10                    # change the first input a lot...
y_changed, _ = rnn(x_changed)
print("last state unchanged:", np.allclose(y[0, -1], y_changed[0, -1]))   # ...the last state never notices
"""),
]
