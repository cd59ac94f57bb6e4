"""Generate the small sample corpus of PDFs used to try out the curation pipeline.

It writes five born-digital, multi-page portrait documents (an annual report, a lab technical
note, council minutes, an e-bike owner's manual and a local-history article) and one landscape
16:9 slide deck. All content is fictional and held as data near the top of this file; the layout
code at the bottom turns it into HTML and lays it out with ``pymupdf.Story``.

Run from the repository root::

    python data/samples/make_samples.py [--out DIR]

``--out`` defaults to the folder holding this script. The output is deterministic: metadata dates
are fixed and no random file /ID is written, so two runs give byte-identical files.
"""

from __future__ import annotations

import argparse
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymupdf

# --------------------------------------------------------------------------------------------
# Content model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A table with a caption, one header row and body rows of plain-text cells."""

    caption: str
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Items:
    """A bulleted (or numbered, when ``ordered``) list."""

    items: list[str]
    ordered: bool = False


# Prose is a plain string; blank lines separate paragraphs and other whitespace is collapsed.
Block = str | Table | Items


@dataclass(frozen=True)
class Section:
    heading: str
    blocks: list[Block]


@dataclass(frozen=True)
class Doc:
    """A portrait document: title block, then sections."""

    filename: str
    title: str
    subtitle: str
    byline: str
    author: str
    footer: str
    paper: str  # a pymupdf.paper_rect() name: "letter" or "a4"
    font: str  # CSS font-family of the body text
    sections: list[Section]


@dataclass(frozen=True)
class Slide:
    title: str
    bullets: list[str]
    table: Table | None = None


@dataclass(frozen=True)
class Deck:
    filename: str
    title: str
    author: str
    footer: str
    slides: list[Slide]


# --------------------------------------------------------------------------------------------
# Content: (1) annual report of a regional water utility
# --------------------------------------------------------------------------------------------

WATER_REPORT = Doc(
    filename="water_utility_annual_report.pdf",
    title="Harrow Valley Water Authority: Annual Report 2023",
    subtitle="Year ended 31 December 2023",
    byline="Published 28 March 2024 by the Harrow Valley Water Authority, 40 Millrace Road, "
    "Colden. Approved by the Board of Directors on 21 March 2024.",
    author="Harrow Valley Water Authority",
    footer="Harrow Valley Water Authority | Annual Report 2023",
    paper="letter",
    font="Times",
    sections=[
        Section(
            "From the General Manager",
            [
                """2023 was the year in which the Authority finally turned a long programme of
                planning into pipes in the ground. We replaced 6.2 kilometres of the Eastbank
                trunk main, rebuilt all twelve rapid-gravity filters at the Colden Reservoir
                Treatment Works and fitted smart meters at a further 31,000 homes. Capital
                expenditure reached a record $52.3 million, while operating revenue grew by 5.8
                percent to $96.4 million.""",
                """The summer drought tested the system hard. Between 3 July and 18 August
                rainfall across the catchment was 38 percent of the long-term average and storage
                in Colden Reservoir fell to 61 percent of capacity, its lowest level since 2011.
                Thanks to customers who answered our call to save water, and to the leak-finding
                crews who repaired 1,914 leaks during the year, we did not need a hosepipe ban.
                Non-revenue water fell to 13.8 percent, beating our 2025 target two years early.""",
                """I would like to thank our 318 employees and the members of the Board for their
                work during a demanding year. - Margaret Ellery, General Manager""",
            ],
        ),
        Section(
            "Who We Serve",
            [
                """The Authority supplies drinking water to about 391,000 people in the towns of
                Colden, Pike's Ford, Ashby Marsh and Wenlow and in 27 surrounding villages. Water
                is drawn from Colden Reservoir and from four boreholes in the Marsh Lane aquifer,
                treated at three works and delivered through 2,140 kilometres of mains and 14
                service reservoirs. At the end of 2023 we served 148,620 customer connections, an
                increase of 2,610 on the previous year, most of them new homes in the Wenlow
                South development.""",
                """Residential customers account for nine in every ten connections and almost
                three quarters of revenue. Industrial demand is concentrated in a small number of
                large users, the biggest being the Pike's Ford food-processing park, which alone
                used 1.9 million cubic metres in 2023.""",
                Table(
                    "Table 1. Customer connections, water delivered and revenue by class, 2023",
                    [
                        "Customer class",
                        "Connections",
                        "Water delivered (million m3)",
                        "Revenue ($m)",
                        "Share of revenue",
                    ],
                    [
                        ["Residential", "136,410", "27.9", "71.2", "73.9%"],
                        ["Commercial", "10,380", "7.6", "17.6", "18.3%"],
                        ["Industrial", "412", "4.3", "5.1", "5.3%"],
                        ["Public and institutional", "1,418", "1.4", "2.5", "2.6%"],
                        ["Total", "148,620", "41.2", "96.4", "100.0%"],
                    ],
                ),
            ],
        ),
        Section(
            "Financial Performance",
            [
                """Operating revenue rose from $91.1 million in 2022 to $96.4 million in 2023.
                Most of the increase came from the 4.5 percent tariff rise approved by the
                regional regulator in January 2023; the rest came from growth in connections.
                The volume of water delivered fell by 1.9 percent to 41.2 million cubic metres,
                because smart meters helped customers find leaks on their own side of the
                boundary and because several large commercial users installed rainwater
                recycling.""",
                """Operating expenses increased by 4.4 percent to $73.9 million. Electricity for
                pumping cost $9.8 million, $1.1 million more than budgeted, as a result of the
                extra pumping from the Marsh Lane boreholes during the drought. Chemical costs
                fell by $0.4 million after the switch from aluminium sulphate to ferric sulphate
                at Colden. Net operating income was $22.5 million, compared with $20.3 million in
                2022, and the Authority ended the year with $41.7 million in cash and short-term
                investments.""",
                Table(
                    "Table 2. Five-year financial and operating summary",
                    ["Measure", "2019", "2020", "2021", "2022", "2023"],
                    [
                        ["Operating revenue ($m)", "80.2", "83.5", "87.0", "91.1", "96.4"],
                        ["Operating expenses ($m)", "61.7", "64.9", "66.2", "70.8", "73.9"],
                        ["Net operating income ($m)", "18.5", "18.6", "20.8", "20.3", "22.5"],
                        ["Capital expenditure ($m)", "34.0", "29.6", "38.2", "44.7", "52.3"],
                        [
                            "Customer connections",
                            "139,870",
                            "141,920",
                            "143,650",
                            "146,010",
                            "148,620",
                        ],
                        ["Water delivered (million m3)", "41.8", "43.1", "42.5", "42.0", "41.2"],
                        ["Non-revenue water (%)", "17.9", "17.2", "16.4", "15.1", "13.8"],
                    ],
                ),
                """The average residential bill in 2023 was $522, or $1.43 per day. The Authority
                continued its Helping Hand scheme, which caps bills at $300 a year for 4,870
                low-income households; the scheme cost $1.0 million and is funded from the
                general tariff.""",
            ],
        ),
        Section(
            "Capital Programme",
            [
                """The five-year capital plan adopted in 2021 commits $240 million to renewing
                ageing assets and preparing the network for a population that is forecast to
                reach 430,000 by 2035. Spending in 2023 was $52.3 million, against a budget of
                $55.0 million; the difference is explained by a three-month delay to the
                ultraviolet disinfection plant at Pike's Ford while a replacement transformer was
                sourced.""",
                Table(
                    "Table 3. Capital expenditure by project, 2023",
                    ["Project", "Status at year end", "Spend in 2023 ($m)"],
                    [
                        ["Colden Reservoir filter rebuild (12 filters)", "Complete", "14.8"],
                        ["Eastbank trunk main replacement (6.2 km)", "Complete", "11.3"],
                        ["Smart meter roll-out, phase 2 (31,000 meters)", "On schedule", "9.6"],
                        ["Pike's Ford ultraviolet disinfection plant", "Three months late", "6.1"],
                        ["Other mains and equipment renewals", "Ongoing", "10.5"],
                        ["Total", "", "52.3"],
                    ],
                ),
            ],
        ),
        Section(
            "Water Quality and Compliance",
            [
                """Our laboratory at Marsh Lane analysed 61,240 samples taken from treatment
                works, service reservoirs and customers' taps. Of these, 99.96 percent met every
                regulatory standard. There were 24 individual failures, 19 of which were for
                iron or manganese and were traced to sediment stirred up during mains work in
                Ashby Marsh. No failure posed a risk to health, and each was reported to the
                regulator within 24 hours.""",
                """Customer contacts about the taste, smell or appearance of water fell to 1.1 per
                1,000 customers, down from 1.6 in 2022. The lower figure reflects the new filters
                at Colden, which came back into service in stages between February and
                September.""",
            ],
        ),
        Section(
            "Customers, Workforce and Safety",
            [
                """We answered 118,400 customer calls in 2023, 82 percent of them within 60
                seconds, and resolved 91 percent of written complaints within ten working days.
                Supply interruptions longer than three hours affected 2,960 properties, down from
                4,410 in 2022; the largest was a burst on the Wenlow Road main on 14 November that
                left 780 homes without water for nine hours while a 450 mm valve was replaced.""",
                """The Authority employed 318 people at the end of the year, including 22
                apprentices. There were two lost-time injuries, compared with five in 2022, and
                no serious incidents. All field crews completed refresher training in confined
                space entry and trench safety, and the new depot at Ashby Marsh, opened in April,
                brought the eastern maintenance teams under one roof for the first time.""",
            ],
        ),
        Section(
            "Outlook for 2024",
            [
                """The regulator has approved a tariff increase of 3.9 percent from 1 January
                2024. We plan capital expenditure of $57.0 million, including completion of the
                Pike's Ford ultraviolet plant by June, a start on the 9-kilometre Wenlow link main
                and the third and final phase of the smart meter roll-out. We expect operating
                revenue of about $100.5 million and aim to bring non-revenue water below 13
                percent by the end of the year.""",
            ],
        ),
    ],
)

# --------------------------------------------------------------------------------------------
# Content: (2) technical note from a battery-testing laboratory
# --------------------------------------------------------------------------------------------

BATTERY_NOTE = Doc(
    filename="battery_lab_technical_note.pdf",
    title="Technical Note TN-2024-07: Cycle Life of LFP and NMC811 Pouch Cells at 25 °C and 45 °C",
    subtitle="Kestrel Cell Testing Laboratory, Unit 6, Fenwick Science Park",
    byline="Authors: Dr Imogen Vasquez-Thorne and Rafael Ostrowski. Reviewed by Dr Helen "
    "Achterberg. Issued 14 June 2024 for Pellucid Energy Systems, project PES-118.",
    author="Kestrel Cell Testing Laboratory",
    footer="Kestrel Cell Testing Laboratory | TN-2024-07",
    paper="a4",
    font="Helvetica",
    sections=[
        Section(
            "1. Summary",
            [
                """This note reports accelerated cycle-life testing of two 20-ampere-hour class
                pouch cells proposed for the Pellucid HX-4 home storage unit: a lithium iron
                phosphate (LFP) cell and a nickel-rich NMC811 cell. Sixteen cells were cycled at
                1C charge and 1C discharge in temperature chambers held at 25 °C and 45 °C
                between 9 October 2023 and 31 May 2024.""",
                """The LFP cells retained 91.2 percent of their initial capacity after 1,500
                cycles at 25 °C and 84.6 percent at 45 °C, and none reached the 80 percent
                end-of-life threshold. The NMC811 cells reached 80 percent after a mean of 1,180
                cycles at 25 °C and only 630 cycles at 45 °C. One NMC811 cell was withdrawn at
                45 °C after visible swelling. For a product expected to complete one cycle per
                day for ten years, only the LFP cell meets the requirement with margin.""",
            ],
        ),
        Section(
            "2. Cells Under Test",
            [
                """Both cell types were supplied by Pellucid from pre-production lots and
                arrived at the laboratory on 2 October 2023. On receipt every cell was weighed,
                measured and given a formation check of three cycles at C/3. Cells whose capacity
                differed from the lot mean by more than 1.5 percent were rejected; two NMC811
                cells were rejected on this basis and replaced from the same lot.""",
                Table(
                    "Table 1. Specifications of the cells under test (manufacturer data, "
                    "checked on receipt)",
                    ["Property", "LFP cell (KC-L20)", "NMC811 cell (KC-N21)"],
                    [
                        ["Cathode chemistry", "LiFePO4", "LiNi0.8Mn0.1Co0.1O2"],
                        ["Anode", "Graphite", "Graphite with 3% silicon oxide"],
                        ["Nominal capacity", "20.0 Ah", "21.0 Ah"],
                        ["Nominal voltage", "3.20 V", "3.65 V"],
                        ["Voltage window", "2.50 to 3.65 V", "2.80 to 4.20 V"],
                        ["Nominal energy", "64.0 Wh", "76.7 Wh"],
                        ["Mass (mean of 8 cells)", "465 g", "402 g"],
                        ["Specific energy", "138 Wh/kg", "191 Wh/kg"],
                        ["Supplier lot", "L20-2309-A", "N21-2308-C"],
                    ],
                ),
            ],
        ),
        Section(
            "3. Test Method",
            [
                """Eight cells of each type were split into two groups of four. One group of
                each type was cycled at 25 °C and the other at 45 °C in Binmore TC-400 chambers,
                with the chamber temperature held within 1 °C of the set point. Cells were
                clamped between aluminium plates at a stack pressure of 100 kPa and connected to
                a 32-channel cycler by four-wire leads.""",
                """Each cycle consisted of a constant-current charge at 1C to the upper voltage
                limit, a constant-voltage hold until the current fell to C/20, a 10-minute rest,
                a constant-current discharge at 1C to the lower voltage limit and a further
                10-minute rest. Every 100 cycles a reference performance test was run at 25 °C:
                a full C/3 charge and discharge to measure capacity, followed by a 10-second 2C
                discharge pulse at 50 percent state of charge to measure direct-current internal
                resistance (DCIR).""",
                """Testing stopped when a cell's capacity in the reference test fell below 80
                percent of its initial value, or after 1,500 cycles, whichever came first. State
                of health (SOH) in this note means the measured C/3 capacity divided by the
                initial C/3 capacity.""",
            ],
        ),
        Section(
            "4. Results",
            [
                """Table 2 summarises the results. Capacity fade in the LFP cells was close to
                linear throughout the test, at about 0.6 percent per 100 cycles at 25 °C and 1.0
                percent per 100 cycles at 45 °C. Extrapolating these rates gives an expected life
                of about 3,900 cycles at 25 °C and 2,300 cycles at 45 °C, although extrapolation
                beyond the tested range should be treated with caution.""",
                """The NMC811 cells lost capacity faster from the start and their fade
                accelerated after about 800 cycles at 25 °C and 400 cycles at 45 °C, a pattern
                usually associated with lithium plating or loss of active material. The spread
                between cells was small: the standard deviation of cycles to 80 percent SOH was
                38 cycles at 25 °C and 22 cycles at 45 °C.""",
                Table(
                    "Table 2. Cycle-life results (mean of the cells in each group)",
                    [
                        "Group",
                        "Temp.",
                        "Cells",
                        "Cycles completed",
                        "SOH at end",
                        "Cycles to 80% SOH",
                        "DCIR growth",
                    ],
                    [
                        ["LFP", "25 °C", "4", "1,500", "91.2%", "Not reached", "+14%"],
                        ["LFP", "45 °C", "4", "1,500", "84.6%", "Not reached", "+27%"],
                        ["NMC811", "25 °C", "4", "1,180", "80.0%", "1,180 (sd 38)", "+41%"],
                        ["NMC811", "45 °C", "3", "630", "80.0%", "630 (sd 22)", "+68%"],
                    ],
                ),
                """Mean coulombic efficiency over the test was 99.97 percent for LFP at 25 °C and
                99.91 percent for NMC811 at 45 °C. The round-trip energy efficiency at 1C was 94.8
                percent for LFP and 93.1 percent for NMC811 at the start of testing.""",
            ],
        ),
        Section(
            "5. Discussion",
            [
                """The difference between the two chemistries is larger than the published data
                sheets suggest. The NMC811 supplier quotes 2,000 cycles to 80 percent SOH, but
                that figure is based on a 0.5C charge and a depth of discharge of 80 percent; our
                protocol uses the full voltage window and a 1C charge, which is closer to how the
                HX-4 will be used during short periods of cheap grid electricity.""",
                """Temperature affected the NMC811 cells much more strongly than the LFP cells.
                Raising the chamber from 25 °C to 45 °C roughly halved the cycle life of the
                NMC811 cells, whereas the fade rate of the LFP cells increased by about 70
                percent. The growth in internal resistance followed the same pattern and is
                important for the HX-4, because a 68 percent rise in DCIR would reduce the usable
                power at low temperature below the 5 kW continuous rating of the unit.""",
                Table(
                    "Table 3. State of health (%) measured in the reference performance tests",
                    ["Group", "0 cycles", "300", "600", "900", "1,200", "1,500"],
                    [
                        ["LFP, 25 °C", "100.0", "98.2", "96.4", "94.6", "92.9", "91.2"],
                        ["LFP, 45 °C", "100.0", "96.9", "93.8", "90.8", "87.7", "84.6"],
                        ["NMC811, 25 °C", "100.0", "96.6", "93.0", "88.7", "-", "-"],
                        ["NMC811, 45 °C", "100.0", "92.9", "82.4", "-", "-", "-"],
                    ],
                ),
            ],
        ),
        Section(
            "6. Cell Withdrawn During Testing",
            [
                """Cell N21-045-3 was withdrawn at cycle 412 on 19 January 2024 after its
                thickness increased from 11.2 mm to 13.9 mm. The cell was discharged to 2.80 V,
                moved to the abuse-testing bunker and opened under argon. The separator was
                intact, but there was heavy gas generation at the cathode and a brown deposit on
                the anode surface. Gas chromatography found mainly carbon dioxide and carbon
                monoxide, consistent with electrolyte oxidation at high state of charge and
                temperature. The results for this cell are excluded from Table 2.""",
            ],
        ),
        Section(
            "7. Conclusions and Recommendations",
            [
                Items(
                    [
                        "The LFP cell KC-L20 meets the HX-4 requirement of 3,650 cycles to 80 "
                        "percent SOH at 25 °C on the extrapolated data, and should be taken "
                        "forward to the qualification stage.",
                        "The NMC811 cell KC-N21 does not meet the requirement at either "
                        "temperature and is not recommended for stationary storage.",
                        "Because the HX-4 enclosure may run at 35 to 40 °C in summer, the "
                        "thermal design should keep cell temperature below 35 °C.",
                        "Testing of the four 25 °C LFP cells will continue to 3,000 cycles; a "
                        "follow-up note, TN-2024-12, is planned for March 2025.",
                    ],
                    ordered=True,
                ),
            ],
        ),
    ],
)

# --------------------------------------------------------------------------------------------
# Content: (3) minutes of a city council meeting
# --------------------------------------------------------------------------------------------

COUNCIL_MINUTES = Doc(
    filename="city_council_minutes.pdf",
    title="City of Ashcombe Ridge: Minutes of the Regular Meeting of the City Council",
    subtitle="Tuesday, March 12, 2024, 6:30 p.m., Council Chambers, City Hall, 210 Foundry Street",
    byline="Draft minutes prepared by Rosa Maldonado-Kerr, City Clerk. Approved as presented at "
    "the meeting of March 26, 2024.",
    author="City Clerk, City of Ashcombe Ridge",
    footer="City of Ashcombe Ridge | Council Minutes, March 12, 2024",
    paper="letter",
    font="Times",
    sections=[
        Section(
            "1. Call to Order and Roll Call",
            [
                """Mayor Patricia Hallowell called the meeting to order at 6:31 p.m. and led the
                Pledge of Allegiance. The City Clerk called the roll.""",
                """Present: Mayor Patricia Hallowell; Councilmembers Tomas Reyburn (Ward 1),
                Angela Whitcombe (Ward 2), Desmond Farrow (Ward 3), Lucia Benedetti (Ward 4),
                Harold Skeete (Ward 5) and Naomi Castellan (At-Large). Absent (excused):
                Councilmember Gordon Pryce (At-Large). Staff present: City Manager Everett
                Lindqvist, City Attorney Janine Okonkwo-Hale, Finance Director Priya
                Raghunathan, Public Works Director Carl Mendenhall and City Clerk Rosa
                Maldonado-Kerr. A quorum was present, with seven of eight voting members.""",
            ],
        ),
        Section(
            "2. Approval of the Agenda and Minutes",
            [
                """Councilmember Whitcombe moved to approve the agenda as posted; Councilmember
                Farrow seconded. The motion carried 7-0. Councilmember Benedetti moved to
                approve the minutes of the regular meeting of February 27, 2024, with one
                correction to the spelling of a speaker's name on page 3; Councilmember Reyburn
                seconded. The motion carried 7-0.""",
            ],
        ),
        Section(
            "3. Public Comment",
            [
                """Three members of the public spoke. Ellen Forsberg of 14 Quarry Lane asked the
                Council to install a crosswalk at Quarry Lane and Second Avenue, where she said
                two children had been struck by cars since 2021. Martin Achterhof, owner of
                Ridge Hardware on Main Street, spoke against any reduction in free downtown
                parking. Dolores Imbert, speaking for the Kestner Road Neighbors Association,
                asked the Council to delay the rezoning in item 5 until a traffic study is
                complete. The Mayor thanked the speakers and referred the crosswalk request to
                the Public Works Director, who said a report would come back by April 23.""",
            ],
        ),
        Section(
            "4. Consent Agenda",
            [
                """The consent agenda contained the February treasurer's report, a $42,800
                purchase of two replacement mowers for the Parks Department from Tillman
                Equipment, and the renewal of the city's lease of 1,200 square feet at 18 Depot
                Street for the senior center at $1,650 per month. Councilmember Castellan moved
                to approve the consent agenda; Councilmember Skeete seconded. The motion carried
                7-0.""",
            ],
        ),
        Section(
            "5. Old Business: Ordinance 2024-04, Kestner Road Rezoning (Second Reading)",
            [
                """The ordinance rezones 14.2 acres on the north side of Kestner Road from R-1
                Single-Family Residential to R-3 Multi-Family Residential to allow a development
                of 96 townhomes by Ferrell Creek Homes. City Manager Lindqvist reported that the
                Planning Commission recommended approval 5-1 on February 8, subject to a
                developer-funded left-turn lane and a 40-foot landscaped buffer along the
                eastern boundary.""",
                """Councilmember Benedetti said the neighbors' concerns about traffic were
                reasonable and proposed postponing the vote by 60 days; the proposal received no
                second. Councilmember Farrow noted that the city's 2023 housing study found a
                shortage of about 1,100 homes and that the turn lane would be paid for by the
                developer at an estimated cost of $610,000. Councilmember Farrow moved to adopt
                Ordinance 2024-04 on second reading; Councilmember Whitcombe seconded. The motion
                carried 5-2, with Councilmembers Benedetti and Skeete voting no.""",
            ],
        ),
        Section(
            "6. New Business",
            [
                """6.1 Resolution 2024-18, Mid-Year Budget Amendment. Finance Director
                Raghunathan presented the amendment to the fiscal year 2024 General Fund budget.
                Sales tax receipts for July through January were $293,500 above forecast. The
                amendment adds $593,500 to four spending lines, funded by the higher sales tax
                revenue and by a transfer of $300,000 from the contingency reserve, and raises
                the General Fund budget from $48,620,000 to $48,913,500.""",
                Table(
                    "Table 1. General Fund lines changed by Resolution 2024-18",
                    ["Budget line", "Adopted FY2024", "Amendment", "Revised FY2024"],
                    [
                        ["Police overtime", "$1,150,000", "+$185,000", "$1,335,000"],
                        ["Fire apparatus replacement reserve", "$600,000", "+$250,000", "$850,000"],
                        ["Parks seasonal staffing", "$412,000", "+$38,500", "$450,500"],
                        ["Street maintenance", "$2,340,000", "+$120,000", "$2,460,000"],
                        ["Contingency reserve", "$900,000", "-$300,000", "$600,000"],
                        ["Net change to lines shown", "$5,402,000", "+$293,500", "$5,695,500"],
                    ],
                ),
                """Councilmember Skeete objected to drawing down the contingency reserve before
                the hurricane season. Councilmember Reyburn moved to adopt Resolution 2024-18;
                Councilmember Castellan seconded. The motion carried 6-1, with Councilmember
                Skeete voting no.""",
                """6.2 Resolution 2024-19, Linden Avenue Resurfacing Contract. Public Works
                Director Mendenhall reported that five bids were received on February 20 for
                resurfacing 1.8 miles of Linden Avenue between Foundry Street and the city
                limit. The lowest responsive bid was $1,284,500 from Brightwater Paving LLC,
                7 percent below the engineer's estimate of $1,381,000. Work would begin on May 6
                and finish by August 16. Councilmember Skeete declared that his brother-in-law is
                employed by Brightwater Paving and abstained. Councilmember Whitcombe moved to
                award the contract; Councilmember Benedetti seconded. The motion carried 6-0,
                with one abstention.""",
                """6.3 Downtown Parking Study. Councilmember Skeete moved to direct staff to
                commission a downtown parking study, at a cost not to exceed $45,000, before any
                change to parking time limits on Main Street; Councilmember Benedetti seconded.
                City Manager Lindqvist said the study could not be funded this year without a
                further budget amendment. The motion failed 3-4, with Councilmembers Skeete,
                Benedetti and Reyburn voting yes.""",
            ],
        ),
        Section(
            "7. Summary of Votes",
            [
                Table(
                    "Table 2. Record of motions, March 12, 2024",
                    ["Item", "Moved", "Seconded", "Ayes", "Nays", "Abstain", "Result"],
                    [
                        ["Approve agenda", "Whitcombe", "Farrow", "7", "0", "0", "Carried"],
                        ["Minutes of Feb. 27", "Benedetti", "Reyburn", "7", "0", "0", "Carried"],
                        ["Consent agenda", "Castellan", "Skeete", "7", "0", "0", "Carried"],
                        ["Ordinance 2024-04", "Farrow", "Whitcombe", "5", "2", "0", "Carried"],
                        ["Resolution 2024-18", "Reyburn", "Castellan", "6", "1", "0", "Carried"],
                        ["Resolution 2024-19", "Whitcombe", "Benedetti", "6", "0", "1", "Carried"],
                        ["Parking study", "Skeete", "Benedetti", "3", "4", "0", "Failed"],
                        ["Adjourn", "Castellan", "Farrow", "7", "0", "0", "Carried"],
                    ],
                ),
            ],
        ),
        Section(
            "8. Reports and Adjournment",
            [
                """City Manager Lindqvist reported that the new water meters on the west side
                were 80 percent installed and that the spring leaf collection would run from
                April 1 to April 19. Councilmember Castellan announced a town hall on the library
                expansion at 7:00 p.m. on March 20 in the Community Room. There being no further
                business, Councilmember Castellan moved to adjourn; Councilmember Farrow
                seconded. The motion carried 7-0 and the meeting adjourned at 9:14 p.m. The next
                regular meeting will be held on Tuesday, March 26, 2024, at 6:30 p.m.""",
            ],
        ),
    ],
)

# --------------------------------------------------------------------------------------------
# Content: (4) owner's manual for an e-bike
# --------------------------------------------------------------------------------------------

EBIKE_MANUAL = Doc(
    filename="ebike_user_manual.pdf",
    title="Quillmoor Ridgeline E5 Electric Bicycle: Owner's Manual",
    subtitle="Model year 2024. Document QM-E5-OM, revision C, February 2024",
    byline="Quillmoor Cycles, 9 Ostler Yard, Brackenford. Please read this manual completely "
    "before your first ride and keep it with the bicycle.",
    author="Quillmoor Cycles",
    footer="Quillmoor Ridgeline E5 | Owner's Manual QM-E5-OM rev. C",
    paper="a4",
    font="Helvetica",
    sections=[
        Section(
            "1. About This Manual",
            [
                """Thank you for choosing the Ridgeline E5. This manual covers assembly checks,
                charging, riding modes, routine maintenance and safety for frame sizes S, M and L.
                The E5 is a pedal-assisted bicycle: the motor only helps while you pedal and
                stops assisting at 25 km/h. Components from other manufacturers, such as the
                brakes and gears, come with their own instructions, which take precedence where
                they differ from this manual.""",
                """Text marked WARNING describes a hazard that could lead to serious injury. Text
                marked NOTE gives information that helps you get the best from the bicycle.""",
            ],
        ),
        Section(
            "2. Specifications",
            [
                Table(
                    "Table 1. Ridgeline E5 technical specifications",
                    ["Item", "Specification"],
                    [
                        ["Motor", "Rear hub motor, 250 W rated, 55 N·m peak torque"],
                        ["Battery", "36 V, 14 Ah (504 Wh) lithium-ion, removable, in down tube"],
                        ["Charger", "42 V, 3 A; 0 to 100% in about 5 hours"],
                        ["Maximum assisted speed", "25 km/h"],
                        ["Range (see Table 2)", "45 to 110 km depending on mode and terrain"],
                        ["Frame", "6061 aluminium; sizes S (15 in), M (17 in), L (19 in)"],
                        ["Weight", "24.8 kg with battery (size M); battery alone 2.9 kg"],
                        ["Maximum total load", "130 kg (rider, luggage and child seat)"],
                        ["Brakes", "Hydraulic disc, 180 mm rotors front and rear"],
                        ["Gears", "9-speed derailleur, 11-36 tooth cassette"],
                        ["Tyres", "27.5 x 2.4 in, puncture-resistant, 2.0 to 2.8 bar"],
                        ["Lights", "60 lux front light, rear light with brake function"],
                        ["Display", "2.4 in colour LCD with USB-C charging port (5 V, 1 A)"],
                        ["Water resistance", "IPX5 (rain and spray; do not pressure-wash)"],
                    ],
                ),
            ],
        ),
        Section(
            "3. Before Your First Ride",
            [
                Items(
                    [
                        "Charge the battery fully; a new battery is shipped at about 40 percent.",
                        "Check that the quick-release levers and thru-axles are closed and that "
                        "the handlebar stem bolts are tightened to 5 N·m.",
                        "Set the saddle height so that your knee is slightly bent with the pedal "
                        "at its lowest point; never raise the seat post above the minimum "
                        "insertion mark.",
                        "Inflate both tyres to between 2.0 and 2.8 bar (29 to 41 psi).",
                        "Squeeze both brake levers firmly; they must stop short of the handlebar.",
                        "Switch on the system with the power button on the remote and check that "
                        "the display shows the battery level and that both lights work.",
                        "Practise starting and stopping in Eco mode in a quiet place.",
                    ],
                    ordered=True,
                ),
            ],
        ),
        Section(
            "4. Charging and Caring for the Battery",
            [
                """The battery can be charged on the bicycle through the port on the left of the
                down tube, or removed with the key and charged indoors. Charge only with the
                supplied QC-42 charger, at room temperature between 10 °C and 30 °C, on a hard,
                non-flammable surface. The LED on the charger is red while charging and turns
                green when the battery is full. A full charge from empty takes about 5 hours; 0
                to 80 percent takes about 3 hours.""",
                """If you will not ride for more than four weeks, store the battery at 40 to 60
                percent charge in a dry place between 10 °C and 25 °C and top it up every three
                months. A battery left completely empty for a long time may be permanently
                damaged, and this is not covered by the warranty. The battery is designed to keep
                at least 70 percent of its capacity after 800 full charge cycles.""",
                """WARNING: Never use a battery that has been dropped, is swollen, leaks or smells
                unusual. Take it to an authorised Quillmoor dealer for inspection.""",
            ],
        ),
        Section(
            "5. Assist Modes and Range",
            [
                """Press the + and - buttons on the handlebar remote to change the assist mode.
                The display shows the current mode, speed, battery level and remaining range.
                Hold the - button for two seconds to use Walk mode, which moves the bicycle at up
                to 6 km/h while you push it, for example up a ramp.""",
                Table(
                    "Table 2. Assist modes and typical range with a fully charged battery",
                    ["Mode", "Motor assistance", "Typical range", "Best for"],
                    [
                        ["Eco", "50% of rider input", "up to 110 km", "Long flat rides"],
                        ["Tour", "100% of rider input", "about 85 km", "Everyday commuting"],
                        ["Sport", "175% of rider input", "about 65 km", "Hills, headwinds"],
                        ["Turbo", "250% of rider input", "about 45 km", "Steep climbs, loads"],
                        ["Walk", "Push assist to 6 km/h", "-", "Pushing the bicycle"],
                    ],
                ),
                """NOTE: Range figures were measured with a 75 kg rider on mixed terrain at 20 °C.
                Cold weather, low tyre pressure, heavy loads and frequent starts all reduce range;
                at 0 °C expect about 20 percent less.""",
            ],
        ),
        Section(
            "6. Maintenance Schedule",
            [
                """Regular care keeps the E5 safe and extends the life of its parts. Clean the
                bicycle with a damp cloth or a low-pressure hose and mild soap; remove the
                battery first and never use a pressure washer.""",
                Table(
                    "Table 3. Maintenance schedule",
                    ["When", "What to do", "Who"],
                    [
                        [
                            "Before every ride",
                            "Check tyre pressure, brakes, lights and battery lock",
                            "Owner",
                        ],
                        ["Every 100 km or weekly", "Clean and lubricate the chain", "Owner"],
                        [
                            "Every 500 km",
                            "Check brake pads (replace below 1.5 mm), spoke "
                            "tension and bolt torques",
                            "Owner or dealer",
                        ],
                        [
                            "Every 1,500 km or 6 months",
                            "Full service, gear adjustment, firmware update",
                            "Dealer",
                        ],
                        [
                            "Every 2 years",
                            "Replace brake fluid (mineral oil) and inspect the bearings",
                            "Dealer",
                        ],
                    ],
                ),
            ],
        ),
        Section(
            "7. Troubleshooting",
            [
                """Most problems can be solved without tools. If the display does not switch on,
                check that the battery is fully seated and locked and that it is charged; press
                the power button for three seconds. If the motor does not assist, check that an
                assist mode other than Off is selected and that the speed sensor magnet on the
                rear disc rotor is within 5 mm of the sensor.""",
                Table(
                    "Table 4. Error codes shown on the display",
                    ["Code", "Meaning", "What to do"],
                    [
                        ["E01", "Battery voltage too low", "Charge the battery"],
                        [
                            "E04",
                            "Brake sensor fault",
                            "Release the brake levers and restart; if it persists, see a dealer",
                        ],
                        [
                            "E07",
                            "Motor over temperature",
                            "Ride in a lower mode and let the motor cool for 15 minutes",
                        ],
                        [
                            "E10",
                            "Speed sensor signal lost",
                            "Check the magnet and sensor alignment",
                        ],
                        [
                            "E21",
                            "Communication error",
                            "Check the display cable connector; restart the system",
                        ],
                    ],
                ),
            ],
        ),
        Section(
            "8. Safety and Warranty",
            [
                Items(
                    [
                        "Always wear a properly fitted helmet and use lights in poor visibility.",
                        "Switch the system off and remove the battery before any cleaning, "
                        "transport by car or maintenance.",
                        "Do not modify the motor controller or speed sensor; doing so may make "
                        "the bicycle illegal on public roads and voids the warranty.",
                        "Apply both brakes together and allow a longer stopping distance in wet "
                        "weather; the E5 is heavier than a conventional bicycle.",
                        "Keep children away from the charger and never leave a charging battery "
                        "unattended overnight.",
                    ]
                ),
                """Quillmoor Cycles warrants the frame for 5 years and the motor, battery and
                display for 2 years from the date of purchase. To register your bicycle, keep
                your receipt and the frame number, which is stamped under the bottom bracket.""",
            ],
        ),
    ],
)

# --------------------------------------------------------------------------------------------
# Content: (5) history article about a lighthouse and its keepers
# --------------------------------------------------------------------------------------------

LIGHTHOUSE_HISTORY = Doc(
    filename="lighthouse_history.pdf",
    title="Skerrow Point Light: The Lighthouse and Its Keepers, 1856-1994",
    subtitle="Tarrant Bay Historical Society, Occasional Paper No. 14",
    byline="By Malcolm Dunsire. Published September 2022 with the support of the Skerrow Point "
    "Light Trust.",
    author="Malcolm Dunsire",
    footer="Tarrant Bay Historical Society | Skerrow Point Light",
    paper="letter",
    font="Times",
    sections=[
        Section(
            "A Dangerous Coast",
            [
                """For centuries the reef that runs out from Skerrow Point was the terror of the
                coasting trade. The rocks lie barely awash at low water for almost a mile, and in
                the westerly gales of winter the tide sets ships straight onto them. Parish
                records list 41 wrecks on or near the point between 1800 and 1850, and the loss
                of the collier Margaret Holt with all eleven hands in January 1848 finally moved
                the merchants of Tarrant Bay to act. Their petition of March 1849, signed by 212
                shipowners, masters and traders, asked the Board of Lights for a lighthouse on
                the point itself.""",
            ],
        ),
        Section(
            "Building the Tower",
            [
                """The Board approved the scheme in 1852 and appointed the engineer Josiah
                Penhallow, who had already built two harbour lights further along the coast.
                Work began in April 1853. Granite was quarried at Carnbrea Hill, six miles
                inland, and hauled to the point on a temporary tramway; the foundation had to be
                cut into the rock below the high-water mark, so the masons could work for only
                four hours at each low tide. The tower rose to 31 metres and was topped by a
                lantern holding a first-order Fresnel lens made in Paris, 1.84 metres across,
                which arrived by sea in crates in June 1856.""",
                """The light was first exhibited at sunset on 1 November 1856. It showed a fixed
                white light visible for 18 nautical miles in clear weather, and the total cost
                of the station, including two keepers' cottages and a walled garden, was
                £14,380.""",
            ],
        ),
        Section(
            "The First Keepers",
            [
                """The first principal keeper was Abel Truscott, a former ship's carpenter from
                Tarrant Bay, with Samuel Pender as his assistant. Their days were ruled by the
                lamp. Each evening the five wicks of the colza oil burner were trimmed and lit
                half an hour before sunset; through the night the keepers took four-hour watches,
                wound the clockwork that pumped oil to the burner and wiped soot from the lantern
                glass. In its first year the station burned 2,940 litres of oil. Truscott's
                journal, now held by the Historical Society, records the weather at every watch
                and the passing of 3,412 vessels in 1857 alone.""",
                """Truscott served for 23 years and died in the cottage in February 1879, aged 61.
                His widow Jane was allowed to remain at the station until the end of that year.""",
            ],
        ),
        Section(
            "The Marrack Years",
            [
                """Thomas Marrack, who replaced Truscott in 1879, was to be the longest-serving
                keeper in the station's history. In 1878 the burner had been converted to
                paraffin, and in 1902 Marrack oversaw the installation of a compressed-air fog
                siren that gave two blasts every 60 seconds and could be heard eight miles out to
                sea. Marrack raised six children at the point, and it was his eldest daughter,
                Hester, who made the station famous.""",
                """On the night of 9 December 1894 the brig Catherine Ives, bound from Bristol
                with slate, struck the reef in a full gale. At first light Hester Marrack, then
                19, and her father rowed the station's coble through heavy surf to the wreck and
                took off four of the crew in two trips; the remaining three were taken off by the
                Tarrant Bay lifeboat at noon. Hester received a silver medal from the Royal
                Humane Society and a purse of 50 guineas raised by the people of the town. She
                later married the assistant keeper, Edwin Coles, and lived to the age of 88.""",
            ],
        ),
        Section(
            "Life at the Station",
            [
                """Life at Skerrow Point was isolated but rarely idle. Until the coast road was
                built in 1931 the nearest shop was at Tarrant Bay, four miles away by a cliff
                path, and supplies came by the lighthouse tender every six weeks. The keepers
                kept two cows, a pig and a flock of hens, and the walled garden produced
                potatoes, cabbages and onions enough for both families. The station log for 1888
                shows that the children walked to the school at Penrose Cross each day, except
                in the worst of the winter weather, when Mrs Marrack taught them at the kitchen
                table.""",
                """Inspections by the district superintendent were a constant worry. He arrived
                without warning, ran a white glove along the lens brass and read the night
                journals line by line. In 1867 Samuel Pender was fined a week's pay for allowing
                the light to burn low for twenty minutes during a storm, an entry that Truscott
                recorded in his own journal with evident displeasure.""",
            ],
        ),
        Section(
            "Electrification, War and Automation",
            [
                """William Hesketh, principal keeper from 1911 to 1926, saw the greatest change
                in the light's character. In 1923 a generator house was built behind the tower,
                the oil lamp was replaced by a 3-kilowatt electric lamp, and a rotating screen
                gave the light its present group-flashing character of two white flashes every 15
                seconds, visible for 24 nautical miles. During the Second World War the light was
                shown only when convoys were expected, on orders telephoned from the naval base at
                Fallowmouth, and the keepers under Robert Carrow kept a round-the-clock watch for
                aircraft and mines.""",
                """A radio beacon was added in 1955 and mains electricity arrived in 1961. The
                last principal keeper, Douglas Fairlie, took charge in 1980. On 30 June 1994 the
                station was automated and monitored from the district depot, and Fairlie and his
                two assistants left the point after 137 years of continuous service by resident
                keepers.""",
                Table(
                    "Table 1. Changes to the light, 1856-2016",
                    ["Year", "Light source", "Character", "Range"],
                    [
                        ["1856", "Five-wick colza oil burner", "Fixed white", "18 nmi"],
                        ["1878", "Paraffin burner", "Fixed white", "19 nmi"],
                        ["1923", "3 kW electric lamp", "Two white flashes every 15 s", "24 nmi"],
                        ["1994", "3 kW lamp, automated", "Two white flashes every 15 s", "24 nmi"],
                        ["2016", "LED array", "Two white flashes every 15 s", "18 nmi"],
                    ],
                ),
            ],
        ),
        Section(
            "The Principal Keepers",
            [
                """Seven principal keepers had charge of Skerrow Point between 1856 and 1994. Their
                names are carved on a slate panel unveiled beside the museum door in 2008, next to
                the names of the twenty-three assistant keepers who served under them.""",
                Table(
                    "Table 2. Principal keepers of Skerrow Point Light",
                    ["Principal keeper", "Years in charge", "Notes"],
                    [
                        ["Abel Truscott", "1856-1879", "First keeper; died in service"],
                        ["Thomas Marrack", "1879-1911", "Fog siren 1902; rescue of 1894"],
                        ["William Hesketh", "1911-1926", "Oversaw electrification in 1923"],
                        ["Robert Carrow", "1926-1948", "Kept the light through the war years"],
                        ["Alistair Bannon", "1948-1967", "Radio beacon 1955; mains power 1961"],
                        ["Peter Quayle", "1967-1980", "Relief of keepers by helicopter from 1972"],
                        ["Douglas Fairlie", "1980-1994", "Last keeper; station automated 1994"],
                    ],
                ),
            ],
        ),
        Section(
            "The Light Today",
            [
                """The Skerrow Point Light Trust was formed by local volunteers in 2003 and leased
                the keepers' cottages from the lighthouse authority in 2005. After a restoration
                costing £386,000, the cottages opened as a museum in May 2008, displaying Abel
                Truscott's journals, the original fog siren and the Marrack family's coble. In
                2016 the electric lamp was replaced by an LED array, which reduced the range to
                18 nautical miles but cut power use by 85 percent. The light still flashes twice
                every 15 seconds, and about 21,000 visitors climb the 143 steps of the tower each
                summer.""",
                """This paper draws on the station journals of 1856 to 1994, the Board of Lights
                correspondence held at the county record office, and interviews recorded in 2019
                with Douglas Fairlie and with Margaret Coles, granddaughter of Hester Marrack. The
                author is grateful to the Skerrow Point Light Trust for access to its
                collection.""",
            ],
        ),
    ],
)

# --------------------------------------------------------------------------------------------
# Content: (6) quarterly business review slide deck
# --------------------------------------------------------------------------------------------

QBR_SLIDES = Deck(
    filename="quarterly_review_slides.pdf",
    title="Brightfern Analytics: Q3 2024 Quarterly Business Review",
    author="Brightfern Analytics",
    footer="Brightfern Analytics | Q3 2024 Quarterly Business Review | Confidential",
    slides=[
        Slide(
            "Brightfern Analytics: Q3 2024 Quarterly Business Review",
            [
                "Period covered: 1 July to 30 September 2024",
                "Presented by Camila Ortega-Reyes, CEO, and Joel Hartigan, CFO",
                "Prepared for the Board of Directors meeting of 17 October 2024",
            ],
        ),
        Slide(
            "Q3 2024 at a Glance",
            [
                "Revenue of $18.4M, up 22% year over year and 6% on Q2",
                "Annual recurring revenue (ARR) reached $71.2M, up from $66.0M",
                "Net revenue retention of 114%, gross revenue retention of 93%",
                "Operating margin improved to 9.8% from 4.1% in Q3 2023",
                "46 new customers signed, including 7 enterprise accounts",
            ],
        ),
        Slide(
            "Revenue and ARR",
            [
                "Subscription revenue $16.1M (87.5% of total); services $2.3M",
                "Q3 2023 revenue was $15.1M; Q2 2024 revenue was $17.4M",
                "Net new ARR of $5.2M, the best quarter since Q4 2022",
                "Enterprise tier now 58% of ARR, up from 51% a year ago",
                "Billings of $20.9M, helped by three multi-year prepayments",
            ],
        ),
        Slide(
            "Customers",
            [
                "1,284 paying customers at quarter end (46 new, 9 churned)",
                "112 customers above $100K ARR, up from 97 in Q2",
                "Average ARR per customer rose 4% to $55,500",
                "Net Promoter Score of 48, up 5 points on Q2",
            ],
        ),
        Slide(
            "Product and Platform",
            [
                "Forecast Studio became generally available on 12 August",
                "31% of enterprise customers used Forecast Studio within six weeks",
                "95th-percentile query time cut from 2.8 s to 1.1 s",
                "Platform uptime of 99.97% against a 99.95% service-level target",
            ],
        ),
        Slide(
            "Costs and Profitability",
            [
                "Gross margin of 78.4%, up from 76.9% in Q2 after hosting renegotiation",
                "Operating expenses of $12.6M; operating income of $1.8M",
                "Headcount of 412 at quarter end, 9 more than in Q2",
                "Free cash flow of $2.9M; cash and investments of $54.7M",
            ],
        ),
        Slide(
            "Revenue by Region",
            [
                "EMEA grew 27%, helped by the Frankfurt office opened in July",
                "APAC partners sourced 40% of APAC bookings in the quarter",
                "North America renewed its two largest accounts for three years",
            ],
            Table(
                "Q3 2024 revenue by region",
                ["Region", "Revenue", "Growth vs Q3 2023", "Share of total"],
                [
                    ["North America", "$10.7M", "+18%", "58%"],
                    ["Europe, Middle East and Africa", "$5.2M", "+27%", "28%"],
                    ["Asia-Pacific", "$2.5M", "+34%", "14%"],
                    ["Total", "$18.4M", "+22%", "100%"],
                ],
            ),
        ),
        Slide(
            "Q4 2024 Outlook and Priorities",
            [
                "Revenue guidance of $19.2M to $19.6M; ARR target of $75M",
                "Hire 24 people, 15 of them in engineering",
                "Ship connectors for three ERP systems by 15 December",
                "Hold operating margin at or above 9%",
                "Close the Series D extension of $30M announced in September",
            ],
        ),
    ],
)

DOCUMENTS: list[Doc] = [
    WATER_REPORT,
    BATTERY_NOTE,
    COUNCIL_MINUTES,
    EBIKE_MANUAL,
    LIGHTHOUSE_HISTORY,
]

# --------------------------------------------------------------------------------------------
# Layout
# --------------------------------------------------------------------------------------------

# Fixed PDF dates keep the output byte-identical between runs.
FIXED_DATE = "D:20240401120000Z"
CREATOR = "curation data/samples/make_samples.py"

DOC_MARGIN = 72.0  # points on every side of the text area
KEEP_BELOW = 40.0  # a heading needs this much room below it, or it moves to the next page
SLIDE_RECT = pymupdf.Rect(0, 0, 960, 540)  # 16:9 landscape
SLIDE_MARGIN = 54.0
NUMERIC = re.compile(r"^[+\-$£]*[\d.,]+\s*(%|M|K|m|nmi)?$")
LIGATURE_START = re.compile(r"f(?=[fil])")
INK = (0.3, 0.3, 0.3)

DOC_CSS = """
body {{ margin: 0; font-family: {font}; font-size: 11pt; line-height: 1.35; color: #1a1a1a; }}
h1 {{ font-family: Helvetica; font-size: 19pt; margin: 0 0 6pt 0; color: #123456; }}
p.subtitle {{ font-family: Helvetica; font-size: 11.5pt; margin: 0 0 4pt 0; color: #333333; }}
p.byline {{ font-size: 9.5pt; font-style: italic; margin: 0 0 14pt 0; color: #444444; }}
h2 {{ font-family: Helvetica; font-size: 13pt; margin: 14pt 0 5pt 0; color: #123456; }}
p {{ margin: 0 0 6pt 0; text-align: justify; }}
ol, ul {{ margin: 0 0 6pt 0; }}
li {{ margin: 0 0 3pt 0; }}
p.caption {{ font-family: Helvetica; font-weight: bold; font-size: 9pt; text-align: left;
            margin: 8pt 0 3pt 0; }}
table {{ border-collapse: collapse; width: 100%; margin: 0 0 10pt 0;
        font-family: Helvetica; font-size: 8.5pt; }}
th, td {{ border: 0.5pt solid #8a96a3; padding: 2.5pt 4pt; }}
th {{ text-align: left; font-weight: bold; border-bottom: 1.2pt solid #123456; }}
td.num, th.num {{ text-align: right; }}
"""

SLIDE_CSS = """
body { margin: 0; font-family: Helvetica; color: #1a1a1a; }
h1 { font-size: 36pt; color: #0b4f3c; margin: 0 0 22pt 0; }
ul { margin: 0; }
li { font-size: 24pt; margin: 0 0 12pt 0; }
p.caption { font-weight: bold; font-size: 16pt; margin: 10pt 0 6pt 0; }
table { border-collapse: collapse; width: 100%; font-size: 18pt; }
th { background-color: #d6ece4; text-align: left; }
th, td { border: 0.75pt solid #7a9a8e; padding: 4pt 8pt; }
td.num, th.num { text-align: right; }
"""


def esc(text: str) -> str:
    """Escape text for HTML after collapsing whitespace (content is wrapped triple-quoted text).

    MuPDF's layout turns "fi", "fl", "ff", "ffi" and "ffl" into ligature glyphs that extract
    as U+FB00-U+FB04; no CSS property turns this off, but a ligature cannot span two inline
    elements, so each such "f" goes into its own <span>.
    """
    escaped = html.escape(" ".join(text.split()), quote=False)
    return LIGATURE_START.sub("<span>f</span>", escaped)


def table_html(table: Table, element_id: str = "") -> str:
    """Render a caption and a table; all-numeric columns are right-aligned."""
    numeric = [
        all(NUMERIC.match(row[i]) or not row[i] for row in table.rows)
        for i in range(len(table.header))
    ]

    def cell(tag: str, text: str, col: int) -> str:
        cls = ' class="num"' if numeric[col] else ""
        return f"<{tag}{cls}>{esc(text)}</{tag}>"

    head = "".join(cell("th", text, i) for i, text in enumerate(table.header))
    body = "".join(
        "<tr>" + "".join(cell("td", text, i) for i, text in enumerate(row)) + "</tr>"
        for row in table.rows
    )
    caption = f'<p class="caption">{esc(table.caption)}</p>'
    id_attr = f' id="{element_id}"' if element_id else ""
    return f"{caption}<table{id_attr}><tr>{head}</tr>{body}</table>"


def block_html(block: Block) -> str:
    if isinstance(block, Table):
        return table_html(block)
    if isinstance(block, Items):
        tag = "ol" if block.ordered else "ul"
        items = "".join(f"<li>{esc(item)}</li>" for item in block.items)
        return f"<{tag}>{items}</{tag}>"
    paragraphs = [p for p in re.split(r"\n\s*\n", block) if p.strip()]
    return "".join(f"<p>{esc(p)}</p>" for p in paragraphs)


def document_html(doc: Doc, breaks: set[str]) -> str:
    """Build the document's HTML, starting a new page before each element id in ``breaks``.

    Section headings get ids "h<n>". Table n gets id "t<n>" and is wrapped with its caption
    (and with the section heading, when the table opens the section) in a div "g<n>", so that
    the layout can move the whole group to the next page.
    """

    def attrs(element_id: str) -> str:
        style = ' style="page-break-before: always"' if element_id in breaks else ""
        return f' id="{element_id}"{style}'

    parts = [
        f"<h1>{esc(doc.title)}</h1>",
        f'<p class="subtitle">{esc(doc.subtitle)}</p>',
        f'<p class="byline">{esc(doc.byline)}</p>',
    ]
    tables = 0
    for n, section in enumerate(doc.sections):
        heading = f"<h2{attrs(f'h{n}')}>{esc(section.heading)}</h2>"
        for i, block in enumerate(section.blocks):
            lead = heading if i == 0 else ""
            if isinstance(block, Table):
                tables += 1
                group = lead + table_html(block, f"t{tables}")
                parts.append(f"<div{attrs(f'g{tables}')}>{group}</div>")
            else:
                parts.append(lead + block_html(block))
    return "".join(parts)


def slide_html(slide: Slide) -> str:
    bullets = "".join(f"<li>{esc(b)}</li>" for b in slide.bullets)
    table = table_html(slide.table) if slide.table else ""
    return f"<h1>{esc(slide.title)}</h1><ul>{bullets}</ul>{table}"


def inset(rect: pymupdf.Rect, margin: float) -> pymupdf.Rect:
    return pymupdf.Rect(rect.x0 + margin, rect.y0 + margin, rect.x1 - margin, rect.y1 - margin)


def flow_story(
    html_text: str, css: str, page_rect: pymupdf.Rect, margin: float
) -> tuple[bytes, dict[str, pymupdf.Rect]]:
    """Lay out one HTML story over as many pages as it needs.

    Returns the PDF bytes and the rect of every element that has an id, as MuPDF reports it on
    the page where the element starts (page coordinates; see ``misplaced``).
    """
    buffer = io.BytesIO()
    writer = pymupdf.DocumentWriter(buffer)
    story = pymupdf.Story(html_text, user_css=css)
    rects: dict[str, pymupdf.Rect] = {}

    def record(pos: Any) -> None:  # pos: PyMuPDF's ad-hoc position object
        if pos.id and pos.open_close & 2:
            rects[pos.id] = pymupdf.Rect(pos.rect)

    more = True
    while more:
        device = writer.begin_page(page_rect)
        more, _ = story.place(inset(page_rect, margin))
        story.element_positions(record)
        story.draw(device)
        writer.end_page()
    writer.close()
    return buffer.getvalue(), rects


def misplaced(
    rects: dict[str, pymupdf.Rect], natural: dict[str, pymupdf.Rect], bottom: float
) -> set[str]:
    """Ids to start on a new page: headings ("h<n>") with under KEEP_BELOW points of text area
    below them, and the groups ("g<n>") of tables ("t<n>") split across two pages.

    MuPDF reports a split table either as running past the bottom of the text area or cut
    short, so its height is compared with its natural height on one endless page.
    """
    bad: set[str] = set()
    for element_id, rect in rects.items():
        kind, number = element_id[0], element_id[1:]
        if kind == "h" and rect.y1 > bottom - KEEP_BELOW:
            bad.add(element_id)
        split = rect.y1 > bottom + 0.5 or rect.height < natural[element_id].height - 0.5
        if kind == "t" and split:
            bad.add(f"g{number}")
    return bad


def document_pdf(doc: Doc) -> bytes:
    """Lay out a document, moving stranded headings and split tables to the next page."""
    page_rect = pymupdf.paper_rect(doc.paper)
    css = DOC_CSS.format(font=doc.font)
    endless_page = pymupdf.Rect(0, 0, page_rect.width, 100_000)
    _, natural = flow_story(document_html(doc, set()), css, endless_page, DOC_MARGIN)
    breaks: set[str] = set()
    while True:
        pdf_bytes, rects = flow_story(document_html(doc, breaks), css, page_rect, DOC_MARGIN)
        bad = misplaced(rects, natural, page_rect.y1 - DOC_MARGIN)
        if bad <= breaks:  # nothing new to fix (or a group taller than a page)
            return pdf_bytes
        breaks |= bad


def slides_pdf(deck: Deck) -> bytes:
    """Lay out each slide as its own story on its own page; fail if a slide overflows."""
    buffer = io.BytesIO()
    writer = pymupdf.DocumentWriter(buffer)
    for number, slide in enumerate(deck.slides, start=1):
        story = pymupdf.Story(slide_html(slide), user_css=SLIDE_CSS)
        more, _ = story.place(inset(SLIDE_RECT, SLIDE_MARGIN))
        if more:
            raise ValueError(f"slide {number} ({slide.title!r}) does not fit on one page")
        story.draw(writer.begin_page(SLIDE_RECT))
        writer.end_page()
    writer.close()
    return buffer.getvalue()


def add_footers(pdf: pymupdf.Document, text: str, margin: float, slides: bool) -> None:
    """Write a footer (label left, page number right) in base-14 Helvetica on every page;
    slides also get a coloured bar along the top edge."""
    size = 10.0 if slides else 8.0
    for page in pdf:
        width, height = page.rect.width, page.rect.height
        if slides:
            page.draw_rect(pymupdf.Rect(0, 0, width, 10), color=None, fill=(0.04, 0.31, 0.24))
        y = height - margin / 2
        rule_y = y - 1.4 * size
        page.draw_line((margin, rule_y), (width - margin, rule_y), color=(0.6, 0.6, 0.6), width=0.5)
        number = f"{'Slide' if slides else 'Page'} {page.number + 1} of {pdf.page_count}"
        number_width = pymupdf.get_text_length(number, fontname="helv", fontsize=size)
        page.insert_text((margin, y), text, fontname="helv", fontsize=size, color=INK)
        page.insert_text(
            (width - margin - number_width, y), number, fontname="helv", fontsize=size, color=INK
        )


def save_pdf(
    pdf_bytes: bytes,
    path: Path,
    title: str,
    author: str,
    footer: str,
    margin: float,
    slides: bool = False,
) -> int:
    """Add footers and fixed metadata, subset the fonts and save; return the page count."""
    pdf = pymupdf.open("pdf", pdf_bytes)
    add_footers(pdf, footer, margin, slides)
    pdf.set_metadata(
        {
            "title": title,
            "author": author,
            "subject": "Fictional sample document for the curation pipeline",
            "keywords": "sample, fictional, curation",
            "creator": CREATOR,
            "producer": "PyMuPDF",
            "creationDate": FIXED_DATE,
            "modDate": FIXED_DATE,
        }
    )
    pdf.subset_fonts()  # Story embeds whole fonts; subsetting cuts each file by about 3x
    pdf.save(path, garbage=4, deflate=True, no_new_id=True)  # no_new_id: no random /ID
    return pdf.page_count


def build_document(doc: Doc, out_dir: Path) -> Path:
    path = out_dir / doc.filename
    pages = save_pdf(document_pdf(doc), path, doc.title, doc.author, doc.footer, DOC_MARGIN)
    if not 3 <= pages <= 5:
        raise ValueError(f"{doc.filename} has {pages} pages; expected 3 to 5")
    return path


def build_deck(deck: Deck, out_dir: Path) -> Path:
    path = out_dir / deck.filename
    save_pdf(
        slides_pdf(deck), path, deck.title, deck.author, deck.footer, SLIDE_MARGIN, slides=True
    )
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent, help="output folder"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = [build_document(doc, args.out) for doc in DOCUMENTS]
    paths.append(build_deck(QBR_SLIDES, args.out))
    for path in paths:
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
