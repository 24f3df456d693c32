"""La lezione sulle reti ricorrenti, cella per cella (docs/lecture/build.py ne fa lezione.ipynb)."""

CELLS = [
("md", r"""
# Le reti neurali ricorrenti (RNN)

Le *Recurrent Neural Network* (RNN) sono reti pensate per elaborare **sequenze** di dati: testo, audio,
serie temporali. Come molti altri algoritmi di deep learning, non sono un'idea recente: nascono negli
anni '80, ma hanno mostrato il loro potenziale solo negli ultimi anni, grazie all'aumento della potenza
di calcolo e della quantità di dati, e all'invenzione delle *long short-term memory* (LSTM) negli anni '90.

Grazie alla loro memoria interna, le RNN riescono a ricordare le informazioni importanti sull'input
ricevuto, e questo le rende molto adatte a prevedere ciò che verrà dopo. Per questo sono state a lungo
l'algoritmo di riferimento per i dati sequenziali: rispetto ad altri algoritmi, sanno costruirsi una
comprensione più profonda di una sequenza e del suo contesto.

**Come usare questo notebook.** Eseguite le celle una dopo l'altra (Maiusc+Invio). Tutto gira sulla
CPU di un portatile: in tutto ci vogliono uno o due minuti. Il codice usa `rnnlab`, una libreria
che implementa RNN, LSTM e GRU in NumPy, con la backpropagation scritta a mano. Le figure delle demo
vengono salvate anche nella cartella `figure_lezione/`, pronte per le slide.
"""),
("code", r"""
import numpy as np
import rnnlab
from rnnlab import demos, figures

np.set_printoptions(precision=3, suppress=True)
CARTELLA = "figure_lezione"   # qui le demo salvano i loro grafici (PNG)
"""),
("md", r"""
## Come funzionano le RNN?

Per capire a fondo le RNN dobbiamo partire dalle reti *feed-forward*, viste nella lezione precedente.
In una rete feed-forward, se escludiamo la backpropagation, l'informazione si muove in una sola
direzione: dall'ingresso verso l'uscita.

Questo significa che la rete non ha alcuna memoria degli input ricevuti e non è in grado di prevedere
ciò che potrà seguirli. In altre parole, una rete feed-forward non può apprendere relazioni
sequenziali: non ricorda nulla di ciò che è accaduto in passato, se non ciò che ha imparato durante
l'addestramento.

In una RNN, invece, l'informazione percorre un ciclo. Quando la rete prende una decisione, considera
l'input attuale e, insieme, ciò che ha appreso dagli input ricevuti in precedenza. La figura mette le
due reti una accanto all'altra: a destra lo stato nascosto $h_t$ torna indietro e diventa un ingresso
del passo successivo.
"""),
("code", r"""
figures.feedforward_vs_recurrent()
"""),
("md", r"""
Di solito la memoria di una RNN è a breve termine; con i layer LSTM diventa anche una memoria a lungo
termine (ci torniamo alla fine).

In formule, a ogni passo $t$ la RNN legge l'ingresso $x_t$ e lo stato precedente $h_{t-1}$, e calcola
il nuovo stato:

$$h_t = \tanh\left(W_{ih}\,x_t + b_{ih} + W_{hh}\,h_{t-1} + b_{hh}\right), \qquad y_t = W_{hy}\,h_t + b_y$$

$W_{ih}$ pesa il presente, $W_{hh}$ il passato recente: sono **le stesse matrici a ogni passo**. Lo
stato $h_t$ è la memoria della rete: un vettore di numeri che riassume tutto ciò che ha letto finora.

La cella seguente calcola questa formula a mano, con un ciclo `for` in NumPy, e la confronta con la
RNN di `rnnlab`.
"""),
("code", r"""
rng = np.random.default_rng(0)
rnn = rnnlab.RNN(input_size=3, hidden_size=4, dtype=np.float64, rng=rng)
x = rng.normal(size=(1, 5, 3))        # una sequenza: B=1, T=5 passi, D=3 numeri per passo
y, h_finale = rnn(x)                  # y: lo stato h_t a ogni passo, forma (1, 5, 4)

W_ih, W_hh = rnn.weight_ih_l0.data, rnn.weight_hh_l0.data
b = rnn.bias_ih_l0.data + rnn.bias_hh_l0.data
h = np.zeros(4)                       # all'inizio la memoria è vuota
for t in range(5):
    h = np.tanh(W_ih @ x[0, t] + W_hh @ h + b)   # il presente x_t e il passato h_{t-1}
    print(f"t={t}  h_t = {h}")
print("uguale all'ultimo stato di rnnlab:", np.allclose(h, y[0, -1]))
"""),
("md", r"""
### L'esempio di "neurone"

Un altro modo per illustrare la memoria di una RNN è un esempio. Immaginiamo di dare a una normale
rete feed-forward la parola "neurone" e di farle elaborare la parola un carattere alla volta, chiedendole
a ogni passo di indovinare il carattere successivo. Quando arriva alla lettera "u" ha già dimenticato la
"n" e la "e", e questo le rende praticamente impossibile prevedere quale carattere verrà dopo.

Una RNN, invece, è in grado di ricordare quei caratteri grazie alla sua memoria interna. Per farlo ha due
ingressi: il dato presente e il passato recente. È importante, perché in una sequenza l'ordine dei dati
contiene informazioni preziose su ciò che segue.

Proviamolo davvero. `rnnlab` addestra entrambe le reti (pochi secondi) su dieci parole che condividono
molte lettere: *neurone, nebbia, neve, nero, nuora, uno, treno, tenue, rete, ruota*. Poi fa leggere
"neurone" a tutte e due.
"""),
("code", r"""
from rnnlab import plots
from rnnlab.experiments import run_experiment

neurone = run_experiment("neurone")   # = rnnlab experiment neurone
print(neurone.table)
plots.plot_neurone(neurone.rows)
"""),
("md", r"""
Nessuna rete può fare meglio del suo limite teorico. Chi vede solo la "u" non sa se è la "u" di
"neurone", di "uno", di "nuora", di "tenue" o di "ruota"; chi ricorda "neu" sa che viene una "r". Ma nemmeno la
memoria fa miracoli: dopo "ne" la parola può essere *neurone*, *nebbia*, *neve* o *nero*, e il meglio
che si possa fare è dare alla "u" una probabilità di 1/4. Le linee del grafico sono questi due limiti
(tratteggiata: solo la lettera corrente; continua: tutto il prefisso), le barre mostrano quanto ci
arriva vicino ciascuna rete.

Possiamo anche guardare dentro le due reti mentre leggono. La pagina qui sotto mostra le dieci parole,
una lettera alla volta: sotto ogni lettera c'è la probabilità che ciascuna rete assegna alla lettera
che viene davvero dopo (più scuro vuol dire più sicura). Guardate la "u" di "neurone": la rete
feed-forward esita, la RNN no. La pagina è interattiva: passando il mouse sulle lettere in alto
compaiono le cinque lettere più probabili secondo la RNN.
"""),
("code", r"""
pagina = rnnlab.explore(neurone=True)
pagina
"""),
("md", r"""
Una rete feed-forward, come tutti gli altri algoritmi di deep learning, applica una matrice di pesi ai
suoi input e produce l'output. Le RNN applicano pesi sia all'input presente ($W_{ih}$) sia a quelli
precedenti, attraverso lo stato ($W_{hh}$). Inoltre, una RNN aggiusta i propri pesi con la discesa del
gradiente, calcolato con la *backpropagation through time* (BPTT), che vedremo tra poco.

`pagina.save("neurone.html")` salva la pagina in un file che si apre con un browser, senza rete.
"""),
("md", r"""
## Tipi di RNN

A seconda di quanti elementi la rete riceve in ingresso e di quanti ne produce in uscita, si
distinguono quattro tipi di RNN: *one-to-one*, *one-to-many*, *many-to-one* e *many-to-many*.
"""),
("code", r"""
figures.four_kinds()
"""),
("md", r"""
- **One-to-one**: un ingresso, un'uscita, nessuna sequenza. È la rete feed-forward classica, per esempio
  un classificatore di immagini.
- **One-to-many**: un solo ingresso, una sequenza in uscita. Per esempio, una didascalia generata da
  un'immagine, una melodia da una nota iniziale, una parola dalla sua prima lettera.
- **Many-to-one**: una sequenza in ingresso, una sola risposta alla fine. Per esempio, capire se una
  recensione è positiva o negativa, o sommare due numeri marcati in una lunga sequenza.
- **Many-to-many**: una sequenza in ingresso e una in uscita. Può essere *allineata* (un'uscita per ogni
  ingresso, come il carattere successivo di "neurone") oppure *encoder-decoder*, quando le lunghezze
  differiscono, come nella traduzione di una frase.

In `rnnlab` ciascun tipo è un modello. Guardiamo le forme degli array: `B` è il numero di esempi,
`T` la lunghezza della sequenza, `D` le caratteristiche di ogni passo.
"""),
("code", r"""
from rnnlab.models import ManyToMany, ManyToOne, OneToOne

B, T, D = 2, 7, 3
x_singolo = np.zeros((B, D), np.float32)           # un vettore per esempio
x_sequenza = np.zeros((B, T, D), np.float32)       # una sequenza per esempio
print("one-to-one   ", OneToOne(D, 16, 5)(x_singolo).shape)            # (B, 5): una risposta
print("many-to-one  ", ManyToOne("lstm", D, 16, 5)(x_sequenza).shape)  # (B, 5): una risposta alla fine
print("many-to-many ", ManyToMany("lstm", D, 16, 5)(x_sequenza).shape) # (B, T, 5): una a ogni passo
"""),
("md", r"""
Il caso *one-to-many* è il meno intuitivo: come fa una rete a scrivere una sequenza intera partendo da
un solo dato? L'ingresso imposta lo stato iniziale $h_0$; poi, a ogni passo, la rete riceve ciò che ha
appena prodotto e decide il prossimo elemento. La demo addestra una piccola rete che riceve soltanto
la prima lettera di una parola e la scrive tutta, una lettera alla volta.
"""),
("code", r"""
uno_a_molti = demos.one_to_many(out=CARTELLA, formats=("png",))
uno_a_molti.figure
"""),
("md", r"""
## BPTT

Per capire la *backpropagation through time* (BPTT) dobbiamo ricordare che cosa sono la forward
propagation e la backpropagation.

Nelle reti neurali eseguiamo la *forward propagation* per ottenere l'output del modello e confrontarlo
con quello corretto: la differenza è l'errore, misurato da una funzione di costo (*loss*). La
*backpropagation* serve a calcolare il gradiente della funzione di costo rispetto ai pesi della rete:
l'algoritmo percorre la rete all'indietro, layer dopo layer, e calcola le derivate parziali dell'errore
rispetto a ciascun peso.

Queste derivate vengono poi usate dalla *discesa del gradiente*, un algoritmo che minimizza
iterativamente una funzione: sposta ogni peso di un piccolo passo nella direzione che fa diminuire
l'errore. In pratica, quindi, è così che i pesi del modello cambiano durante l'addestramento.

La BPTT è semplicemente la backpropagation applicata a una RNN "srotolata". Srotolare la rete è uno
strumento concettuale e visivo, che ci aiuta a capire che cosa succede al suo interno. Quasi sempre,
quando si usa una RNN, la backpropagation è calcolata in automatico dalla libreria; dobbiamo però
capire come funziona per affrontare i problemi che possono sorgere durante lo sviluppo.

Possiamo vedere una RNN come una sequenza di reti neurali, una per passo, che si passano lo stato
l'una con l'altra. La figura seguente mostra una RNN srotolata sulla parola "neurone": non ci sono più
cicli, e ogni passo temporale è disegnato a parte, con l'informazione che passa da uno al successivo.
Si vede anche perché una RNN può essere vista come una sequenza di reti neurali.
"""),
("code", r"""
figures.unrolled("neurone")
"""),
("md", r"""
Con la BPTT lo srotolamento è necessario, perché l'errore a un dato istante dipende dagli istanti
precedenti. L'errore totale è la somma degli errori di ogni passo, $L = \sum_t L_t$. Nella BPTT l'errore
viene propagato all'indietro dall'ultimo passo al primo, attraversando tutti gli istanti: così si calcola
il contributo di ogni istante, e poiché $W_{hh}$ è la stessa a ogni passo, il suo gradiente è la
**somma** dei contributi di tutti i passi. Il gradiente che dal passo $t$ arriva allo stato $h_k$ di un
passo precedente attraversa una catena di derivate:

$$\frac{\partial L_t}{\partial h_k} = \frac{\partial L_t}{\partial h_t}\;\prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}},
\qquad \frac{\partial h_j}{\partial h_{j-1}} = \mathrm{diag}\!\left(1 - h_j^2\right) W_{hh}.$$

Ricordiamoci di questo prodotto: è la chiave dei problemi della prossima sezione.

Un gradiente calcolato a mano si può sempre verificare: spostiamo di pochissimo un peso e guardiamo di
quanto cambia l'errore (differenze finite). La BPTT di `rnnlab` deve dare lo stesso numero.
"""),
("code", r"""
rng = np.random.default_rng(1)
rnn = rnnlab.RNN(input_size=2, hidden_size=3, dtype=np.float64, rng=rng)
x = rng.normal(size=(1, 6, 2))                  # una sequenza di T=6 passi

def errore():
    y, _ = rnn(x)
    return 0.5 * np.sum(y ** 2)                 # un errore qualsiasi, che dipende da tutti i passi

y, _ = rnn(x)
rnn.backward(y)                                 # BPTT: dL/dy = y, all'indietro su tutti i passi
bptt = rnn.weight_hh_l0.grad[0, 1]

eps = 1e-6
W = rnn.weight_hh_l0.data
W[0, 1] += eps; piu = errore()
W[0, 1] -= 2 * eps; meno = errore()
W[0, 1] += eps
print(f"BPTT:              {bptt:.10f}")
print(f"differenze finite: {(piu - meno) / (2 * eps):.10f}")
"""),
("md", r"""
Notiamo infine che la BPTT può essere computazionalmente costosa se gli step temporali sono molti: per
tornare indietro bisogna aver conservato lo stato di ogni passo, quindi memoria e tempo crescono con la
lunghezza $T$ della sequenza. Per questo, sulle sequenze lunghe si usa la **BPTT troncata**: si divide
la sequenza in blocchi di $k$ passi, lo stato passa da un blocco al successivo, ma il gradiente torna
indietro al massimo di $k$ passi. Il costo di ogni aggiornamento resta costante, al prezzo di non
vedere le dipendenze più lunghe di $k$. La demo misura tempo e memoria nei due casi.
"""),
("code", r"""
costo = demos.bptt_cost(lengths=(50, 100, 200, 400), window=50, hidden=64, out=CARTELLA, formats=("png",))
costo.figure
"""),
("md", r"""
## Problemi comuni nelle RNN

Le RNN hanno due problemi principali. Per capirli dobbiamo ricordare il concetto di gradiente.

Il gradiente è il vettore delle derivate parziali di una funzione rispetto ai suoi ingressi: misura
quanto cambia l'uscita della funzione se cambiamo di poco gli ingressi.

Il gradiente è anche la pendenza della funzione. Più è alto, più la funzione è ripida e più velocemente
il modello può imparare; se invece la pendenza è zero, il modello smette di imparare. Nel nostro caso il
gradiente misura come cambia l'errore al variare di tutti i pesi.

Torniamo al prodotto della BPTT: andando indietro di un passo, il gradiente viene moltiplicato per
$\mathrm{diag}(1 - h_j^2)\,W_{hh}$. Dopo $n$ passi, il fattore è un prodotto di $n$ matrici. Se queste
tendono ad allungare i vettori, il prodotto cresce in modo esponenziale; se tendono ad accorciarli,
svanisce in modo esponenziale. Un numero aiuta l'intuizione:
"""),
("code", r"""
for fattore in (0.9, 1.0, 1.1):
    print(f"{fattore} moltiplicato per se stesso 50 volte: {fattore ** 50:.3g}")
"""),
("md", r"""
### Exploding gradients

Il problema degli *exploding gradients* si verifica quando il gradiente cresce a dismisura andando
indietro nel tempo: l'algoritmo assegna allora ai pesi aggiornamenti enormi, l'errore schizza verso
l'infinito e l'addestramento si rompe (compaiono `inf` e `nan`). Si può risolvere **troncando** il
gradiente, cioè imponendogli un limite: è il *gradient clipping*. Se la norma del gradiente supera una
soglia, lo si riscala fino alla soglia, mantenendone la direzione.

La demo addestra due volte la stessa RNN, con una matrice $W_{hh}$ pari al doppio di una matrice
ortogonale (che quindi allunga i vettori): una volta senza clipping e una volta con.
"""),
("code", r"""
esplosione = demos.run_exploding(steps=600, out=CARTELLA, formats=("png",))   # steps=2000 per un addestramento completo
esplosione.figures["exploding_clipping"]   # in CARTELLA c'è anche exploding_flow_heatmap.png
"""),
("md", r"""
### Vanishing gradients

Il problema dei *vanishing gradients* si verifica quando i valori del gradiente diventano troppo piccoli:
il modello smette di imparare, o ci mette troppo tempo per arrivare a un risultato. In una RNN succede
andando indietro nel tempo: il segnale che arriva ai passi lontani è così debole che la rete non riesce
a collegare un'uscita a un ingresso di molti passi prima, cioè non impara le dipendenze a lungo termine.

La demo prende una RNN, una GRU e una LSTM appena inizializzate, fa leggere a tutte lo stesso testo e
misura quanto gradiente dell'ultimo passo arriva a ciascun passo precedente.
"""),
("code", r"""
svanimento = demos.run_vanishing(seq_len=60, hidden=32, batch=16, out=CARTELLA, formats=("png",))
svanimento.figure
"""),
("md", r"""
## RNN e LSTM

Le *long short-term memory network* (LSTM) sono un'estensione della memoria delle RNN: permettono di
imparare da eventi separati da grandi intervalli di tempo.

Le LSTM assegnano ai dati dei "pesi" che aiutano la rete a far entrare nuova informazione, a
dimenticarla, oppure a darle abbastanza importanza da influenzare l'output.

Le unità LSTM sono i mattoni con cui si costruiscono i layer di un particolare tipo di RNN, chiamata
appunto rete LSTM.

Le LSTM permettono alle RNN di ricordare gli ingressi per lunghi periodi di tempo, perché conservano
l'informazione in una memoria, la **cella** $c_t$, in cui possono leggere, scrivere e cancellare.

Questa memoria è controllata da *porte* (gate), che decidono se memorizzare o meno un'informazione in
base all'importanza che le viene assegnata. L'importanza è data dai pesi, che a loro volta vengono
appresi dall'algoritmo: la rete impara nel tempo quali informazioni sono importanti e quali no.

In una cella LSTM ci sono tre tipi di porte: *input*, *forget* e *output*. Decidono se far entrare un
nuovo input (input gate), se cancellare un'informazione perché non più importante (forget gate), o se
lasciarla influire sull'uscita al passo attuale (output gate).
"""),
("code", r"""
figures.lstm_cell()
"""),
("md", r"""
Le equazioni sono a destra nella figura, con i nomi di PyTorch: $W_{ii}$ pesa l'ingresso nella porta
$i$, $W_{hi}$ lo stato precedente, e così via; $\sigma$ è la sigmoide e $\odot$ il prodotto elemento per
elemento. Il cuore della cella sono le ultime due righe, che qui scriviamo con l'indice del tempo
(nel disegno $c_t$ si chiama c′ e $c_{t-1}$ si chiama c):

$$c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)$$

La forget gate $f_t$ decide quanto della vecchia memoria $c_{t-1}$ tenere, la input gate $i_t$ quanto
del nuovo candidato $g_t$ scrivere, la output gate $o_t$ quanto della memoria mostrare all'esterno, in
$h_t$.

Le porte di una LSTM hanno un'attivazione sigmoidale: la loro uscita va da zero (porta chiusa) a uno
(porta aperta). Addestriamo una piccola LSTM sulle dieci parole di prima (pochi secondi) e guardiamo
le sue porte mentre legge "neurone".
"""),
("code", r"""
from rnnlab import diagnostics, plots
from rnnlab.data.tasks import neurone_data
from rnnlab.optim import Adam
from rnnlab.train import optimize

parole = neurone_data()                 # le dieci parole, lettera per lettera
V = len(parole.vocab)
lstm = ManyToMany("lstm", 8, 32, V, input_vocab=V, rng=np.random.default_rng(0))

def un_passo(passo):
    logits = lstm(parole.x, parole.lengths)
    errore, d_logits = rnnlab.cross_entropy(logits, parole.y, parole.mask)
    lstm.backward(d_logits)             # la BPTT
    return errore

storia = optimize(lstm.parameters(), un_passo, Adam(lstm.parameters(), lr=1e-2), steps=400)
with rnnlab.no_grad():
    giuste = (lstm(parole.x, parole.lengths).argmax(-1) == parole.y)[parole.mask].mean()
print(f"errore: {storia[0]['loss']:.2f} all'inizio, {storia[-1]['loss']:.2f} dopo 400 passi")
print(f"lettere successive indovinate: {giuste:.0%}")

ids = parole.encode("^neurone")[None, :]
traccia = diagnostics.gate_trace(lstm, lstm.inputs.embedding(ids))
plots.plot_gates("^neurone", {k: v[:, 0] for k, v in traccia.items()}, names=["i", "f", "o", "c"], units=12,
                 title="le porte della LSTM mentre legge '^neurone' (12 unità su 32)")
"""),
("md", r"""
Le righe `i`, `f` e `o` restano tra 0 e 1, come promesso dalla sigmoide; la cella `c` invece è libera di
accumulare valori positivi e negativi.

L'uso di queste celle attenua il problema dei vanishing gradients: lungo la cella il gradiente non
attraversa una `tanh` a ogni passo, ma viene moltiplicato soltanto per la forget gate $f_t$
(perché $c_t = f_t\,c_{t-1} + \dots$). Finché la forget gate resta vicina a 1, il gradiente arriva
lontano, e l'addestramento può imparare dipendenze lunghe. Lo abbiamo misurato poco fa:
"""),
("code", r"""
for nome in ("RNN", "LSTM"):
    verdetto = svanimento.verdicts[nome]
    print(f"{nome:4}: al primo passo arriva {verdetto.start_ratio:.1g} del gradiente dell'ultimo")
"""),
("md", r"""
## Esercizi

1. Disegnate `figures.unrolled("ciao")`. Quante volte compare la matrice $W_{hh}$ nella rete srotolata?
   Quante matrici *diverse* impara la rete?
2. Nella cella che calcola la RNN a mano, mettete `W_hh = np.zeros((4, 4))` prima del ciclo. Che tipo
   di rete ottenete? Che cosa sa ancora dei passi precedenti?
3. Classificate come one-to-one, one-to-many, many-to-one o many-to-many: (a) tradurre una frase
   dall'italiano all'inglese; (b) decidere se un'e-mail è spam; (c) generare la didascalia di una foto;
   (d) prevedere il carattere successivo a ogni lettera di una parola.
4. Un gradiente viene moltiplicato per 0,8 a ogni passo all'indietro. Quanto ne resta dopo 20 passi? E
   dopo 100? Dopo quanti passi scende sotto un millesimo?
5. Con la BPTT troncata a $k = 20$ passi, la rete può imparare che la lettera letta 50 passi fa decide
   la prossima? Lo stato porta comunque informazione da 50 passi fa?
6. Nella demo sui vanishing gradients, la LSTM con l'inizializzazione di PyTorch (bias della forget gate
   vicino a 0) si comporta come la RNN. Perché un bias della forget gate pari a 1 aiuta?
7. Ripetete `demos.run_exploding(steps=600, out=CARTELLA, clip=10.0)`: il clipping funziona ancora?
   Che cosa succede con `gain=1.0` (una $W_{hh}$ ortogonale, che non allunga i vettori)?
"""),
("md", r"""
<details>
<summary><b>Soluzioni</b> (cliccate per aprire)</summary>

1. Nella figura l'etichetta $W_{hh}$ compare tre volte, da $h_1$ a $h_4$; in realtà la matrice si usa
   a ogni passo, anche da $h_0$ a $h_1$: quattro volte per quattro lettere. Ma è sempre **la stessa**
   matrice (nella figura $W_{xh}$ è la nostra $W_{ih}$): la rete impara una sola $W_{hh}$, una sola
   $W_{ih}$ e una sola $W_{hy}$, condivise da tutti i passi. Per questo una RNN può leggere sequenze di qualunque lunghezza.
2. Con $W_{hh} = 0$ lo stato diventa $h_t = \tanh(W_{ih} x_t + b)$: dipende solo dall'ingresso attuale.
   È una rete feed-forward (one-to-one) applicata a ogni passo, senza alcuna memoria dei passi
   precedenti: esattamente la rete che in "neurone" non sa che cosa segue la "u". La cella nascosta
   qui sotto lo verifica.
3. (a) many-to-many, encoder-decoder (le due frasi hanno lunghezze diverse); (b) many-to-one;
   (c) one-to-many; (d) many-to-many allineata.
4. $0{,}8^{20} \approx 0{,}012$ e $0{,}8^{100} \approx 2 \cdot 10^{-10}$. Scende sotto $10^{-3}$ quando
   $0{,}8^n < 10^{-3}$, cioè $n > \ln(10^{-3}) / \ln(0{,}8) \approx 31$: dal 31° passo.
5. No: il gradiente torna indietro al massimo di 20 passi, quindi nessun aggiornamento dei pesi collega
   l'errore di oggi alla lettera di 50 passi fa. Lo stato invece viene passato da un blocco all'altro,
   quindi *può* contenere quell'informazione, ma la rete non riceve mai il segnale che le insegnerebbe a
   conservarla.
6. Lungo la cella il gradiente viene moltiplicato per $f_t$ a ogni passo. Con bias 0, all'inizio
   $f \approx \sigma(0) = 0{,}5$ e dopo 50 passi resta circa $0{,}5^{50} \approx 10^{-15}$; con bias 1,
   $f \approx \sigma(1) \approx 0{,}73$ (la demo stampa la media che misura), quindi il segnale si attenua
   molto più lentamente, e l'addestramento può imparare ad aprire la porta fino a 1.
7. Con soglia 10 il clipping evita ancora i `nan`, ma non basta: i passi restano troppo lunghi e
   l'errore, invece di scendere, resta enorme. La soglia va scelta piccola rispetto alle norme tipiche
   del gradiente. Con `gain=1.0` la matrice ortogonale conserva la lunghezza dei vettori e la `tanh`
   può solo accorciarli, quindi il gradiente non cresce andando indietro: la demo dice *healthy*,
   l'addestramento senza clipping non esplode più e la rete impara.
</details>
"""),
("hidden", r"""
# Soluzione dell'esercizio 2: con W_hh = 0 lo stato dipende solo dall'ingresso del passo
rng = np.random.default_rng(0)
rnn = rnnlab.RNN(input_size=3, hidden_size=4, dtype=np.float64, rng=rng)
rnn.weight_hh_l0.data[...] = 0
x = rng.normal(size=(1, 5, 3))
y, _ = rnn(x)
x_cambiato = x.copy()
x_cambiato[0, 0] += 10                   # cambiamo molto il primo ingresso...
y_cambiato, _ = rnn(x_cambiato)
print("ultimo stato identico:", np.allclose(y[0, -1], y_cambiato[0, -1]))   # ...l'ultimo stato non se ne accorge
"""),
]
