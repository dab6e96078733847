"""A word list written for expspan (no download): RULER's needle keys are adjective-noun pairs and its common-word
task samples plain English words. Kept as Python so it ships with the package without package-data config."""

ADJECTIVES = """
able abrupt absent acidic active adorable agile airy alert alive amber ample ancient angry anxious arctic arid
artful ashen austere awake awful babyish bad bare bashful basic bitter bland blank bleak blind blond bloody blue
blunt blushing bold bony bored bossy bouncy brave brief bright brisk broad broken bronze brown bubbly bulky bumpy
busy calm candid careful careless casual cheap cheerful chilly chubby civil clean clear clever close cloudy clumsy
coarse cold colossal common complex cool cosy costly crafty crazy creamy creepy crisp crooked crowded cruel crunchy
cuddly curly curved cute daily damp dapper daring dark dazzling dear decent deep dense direct dirty distant dizzy
dry dull dusty eager early earnest easy elated elder elegant empty endless energetic equal even exact exotic faded
faint fair faithful famous fancy far fast fearless feeble fertile festive fickle fierce filthy fine firm fixed flaky
flat flawless fluffy foggy fond formal fragile frank free fresh friendly frosty frozen full funny fuzzy gentle giant
giddy gifted glad gleaming glossy golden good graceful grand grassy grave gray greasy great greedy green grim gritty
grumpy hairy handy happy hard harsh hasty heavy hefty helpful hidden high hollow honest hot huge humble hungry icy
idle ill immense jagged jolly joyful juicy keen kind large late lazy lean light likely limp little lively livid
lonely long loose lost loud lovely low loyal lucky lush magic major mellow merry messy mighty mild minor misty
modern modest moist moral muddy murky mute narrow nasty neat needy nervous new nice nimble noble noisy normal nosy
numb odd oily old open orange ornate pale patient peaceful perfect petty pink plain pleasant plump polite poor
posh precious pretty prickly proud purple quaint quick quiet rapid rare raw ready real red regal rich rigid ripe
robust rosy rough round royal rude rural rusty sad safe salty sandy scarce secret serene shabby shaggy shallow sharp
shiny short shy silent silky silly simple sleepy slim slow small smart smooth snug soft solid sour spare spicy
spotty square stable stale steady steep sticky stiff still stormy strict strong sturdy subtle sunny super sweet swift
tall tame tangy tart tender tense thick thin thirsty tidy tight tiny tired tough tricky true twin ugly unique upset
urban vague vast velvet vivid warm wary weak weary wet white whole wide wild windy wise witty wooden worn yellow
young zany zealous
"""

NOUNS = """
acorn actor airport alarm album anchor angle animal ankle answer ant apple apron arch arm army arrow artist ash
attic aunt author autumn avenue baby badge bag bakery ball balloon banana band bank barn barrel basket bath battery
beach bead beam bean bear beard bed bee beetle bell belt bench berry bicycle bird biscuit blanket blade block
blossom board boat body bone book boot border bottle boulder bowl box boy bracelet branch bread brick bridge brook
broom brother brush bubble bucket building bulb bull bus bush butter button cabin cable cactus cafe cake camel
camera camp canal candle cannon canoe canyon cap captain car card carpet carrot cart castle cat cave ceiling cellar
chain chair chalk channel cheese cherry chest chicken child chimney chin circle city clam class cliff clock cloth
cloud clover coach coast coat cobweb coffee coin collar comet compass cook cookie copper coral cord corn cottage
cotton country cousin cow crab cradle crane crayon creek crow crown cup curtain cushion daisy dancer deer desert
desk diamond dinner doctor dog doll dolphin donkey door dragon drawer dream dress drum duck eagle ear earth egg
elbow elephant engine envelope eye fabric face factory falcon farm father feather fence fern ferry field finger
fire fish flag flame flute fog forest fork fountain fox frog fruit furnace galaxy game garden gate gem ghost giraffe
girl glacier glass globe glove goat gold goose grain grape grass guitar hall hammer hand harbor hat hawk heart
hedge helmet hill hive honey hook horn horse hose hotel house island ivory jacket jar jelly jewel journey judge
jungle kettle key king kitchen kite kitten knee knife ladder lake lamp lantern lawn leaf lemon letter library lily
lion lizard lobster lock locket machine magnet mailbox mango map marble market mask meadow melon mirror monkey moon
moss mother mountain mouse mouth mushroom museum nail napkin needle nest net night noodle nose notebook novel nut
oak ocean office onion orange orchard otter owl oyster paint palace pan panda paper parcel parrot path peach pear
pearl pebble pen pencil pepper piano pickle picture pie pig pillow pilot pine pipe planet plant plate pocket poem
pond pony potato pot puddle pump puppet puzzle quilt rabbit radio raft rain rainbow raven ribbon ring river road
robin robot rock rocket roof room rope rose ruler saddle sail salad salmon sand scarf school scissors sea seal seed
shadow shark sheep shelf shell ship shirt shoe shore shovel silver singer sink sister skirt sky sled snail snake
snow soap sock sofa soldier soup spark sparrow spider spoon spring square squirrel stable stage star station statue
stone stool storm stove straw stream street string student sugar suit summer sun swan sweater sword table tail
teacher teapot temple tent thread throne thumb ticket tiger timber toast toe tomato tongue tooth torch tower town
toy tractor train tree truck trumpet tulip tunnel turkey turtle twig umbrella uncle valley vase vest village
violin volcano wagon wall wallet walrus wand water wave whale wheel whistle window wing winter wire wizard wolf
worm yard yarn zebra
"""

VERBS = """
accept add admire agree allow answer appear arrange arrive ask attach avoid bake balance bathe beg behave belong
blink boil borrow bounce bow breathe bring brush build bump calculate call camp care carry carve catch chase cheer
chew choke clap clean climb close coach collect comb compare complain count cover crash crawl cross cry cycle dance
dare decide deliver depend describe deserve destroy develop dig discover divide drag drain draw dream dress drift
drink drive drop dust earn eat embrace employ empty enjoy enter escape examine exist expand explain explore fail
fasten fetch fill film find fix flash float flood flow fly fold follow forgive frame frighten gather gaze gleam
glow grab grin grip groan grow guard guess guide hammer handle hang happen harm hate heal heat help hike hop hover
hug hum hunt hurry identify ignore imagine improve include inform inspect instruct invent invite jog join joke
judge juggle jump kick kneel knit knock knot label land laugh launch lead learn lick lift limp listen live load
lock march marry match measure melt mend milk mix mourn move nail nod note notice obey offer open order organize
own pack paddle paint park pass paste pause peel perform pinch plan plant play please plug point polish pour pray
preach prefer prepare press pretend print produce promise protect pull punch push question race rain raise reach
read realize receive record reduce reflect refuse relax release remain remember repair repeat reply report rescue
rest return rhyme ride ring rinse roar roll rub rule rush sail scatter scrub seal search settle sew shake share
shelter shiver shop shout sigh sign sing sip ski skip slap sleep slide slip smell smile sneeze snore soak sort
spare spell spill spin splash spray sprout squeeze stack stamp stare start steer step stir stitch stop store
stretch stroll study suggest supply support surprise swim swing talk tame taste teach tease tempt thank tickle
tie toss touch tour trace trade train travel tremble trot trust try tug tumble turn twist type unlock unpack
untie use vanish visit wait walk wander want warn wash watch wave weigh whisper whistle wink wish wobble wonder
work worry wrap write yawn yell zip zoom
"""
